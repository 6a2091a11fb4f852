// Request validation at the service edge: nothing reaches the queue, let alone
// Kill Bill, unless it passes. Every error is INVALID_ARGUMENT and names the
// field.
//
// Pure functions; safe from any thread.
#pragma once

#include "absl/status/status.h"
#include "billing/v1/billing_gateway.pb.h"

namespace bg::service {

inline constexpr size_t kMaxExternalKeyBytes =
    255;  // Kill Bill's own limit (code 5).
inline constexpr size_t kMaxNameChars = 100;
inline constexpr size_t kMaxCompanyChars = 100;
inline constexpr size_t kMaxEmailBytes = 254;  // RFC 5321 path limit.
inline constexpr size_t kMaxNotesChars = 4096;
inline constexpr size_t kMaxMetadataEntries = 20;
inline constexpr size_t kMaxMetadataNameChars = 64;
inline constexpr size_t kMaxMetadataValueChars = 255;
inline constexpr size_t kMaxReasonBytes = 255;  // an HTTP header's value

absl::Status ValidateCreateAccount(
    const billing::v1::CreateAccountRequest& request);
absl::Status ValidateGetAccount(const billing::v1::GetAccountRequest& request);
absl::Status ValidateCreateSubscription(
    const billing::v1::CreateSubscriptionRequest& request);
absl::Status ValidateGetSubscription(
    const billing::v1::GetSubscriptionRequest& request);
absl::Status ValidateListSubscriptions(
    const billing::v1::ListSubscriptionsRequest& request);
absl::Status ValidateCancelSubscription(
    const billing::v1::CancelSubscriptionRequest& request);
absl::Status ValidateGetBillingOverview(
    const billing::v1::GetBillingOverviewRequest& request);

}  // namespace bg::service
