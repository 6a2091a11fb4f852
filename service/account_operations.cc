#include "service/account_operations.h"

#include <algorithm>
#include <chrono>
#include <vector>

namespace bg::service {
namespace {

namespace v1 = billing::v1;

// Runs one Kill Bill call through `calls`: admission, timing, recording.
template <typename Fn>
auto Call(KillBillCalls& calls, KillBillEndpoint endpoint, dispatch::Cost cost,
          Fn fn) -> decltype(fn()) {
  if (absl::Status admitted = calls.Admit(endpoint, cost); !admitted.ok())
    return admitted;
  const Clock::TimePoint start = calls.clock()->Now();
  auto result = fn();
  absl::Status status;
  if constexpr (std::is_same_v<decltype(result), absl::Status>) {
    status = result;
  } else {
    status = result.status();
  }
  calls.Record(endpoint, status, calls.clock()->Now() - start);
  return result;
}

// What is left of the caller's deadline, as the Kill Bill call's timeout (the
// client caps it at killbill.request_timeout): no Kill Bill call outlives the
// gRPC call it serves. What is left of the caller's deadline, less the time the
// answer needs to travel back, so a stalled Kill Bill call ends with the
// gateway's explicit UNAVAILABLE rather than the caller's own
// DEADLINE_EXCEEDED.
constexpr std::chrono::milliseconds kAnswerMargin{50};

killbill::CallOptions UntilDeadline(const KillBillCalls& calls) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        calls.deadline() - calls.clock()->Now()) -
                    kAnswerMargin;
  return {std::max(left, std::chrono::milliseconds(1))};
}

v1::Account ToProto(const killbill::Account& a) {
  v1::Account out;
  out.set_account_id(a.account_id);
  out.set_external_key(a.external_key);
  out.set_name(a.name);
  out.set_email(a.email);
  out.set_currency(a.currency);
  out.set_company(a.company);
  out.set_notes(a.notes);
  out.set_time_zone(a.time_zone);
  out.set_bill_cycle_day_local(a.bill_cycle_day_local);
  return out;
}

}  // namespace

const char* TagDefinitionId(v1::AccountTag tag) {
  switch (tag) {
    case v1::ACCOUNT_TAG_AUTO_PAY_OFF:
      return killbill::kTagAutoPayOff;
    case v1::ACCOUNT_TAG_AUTO_INVOICING_OFF:
      return killbill::kTagAutoInvoicingOff;
    case v1::ACCOUNT_TAG_OVERDUE_ENFORCEMENT_OFF:
      return killbill::kTagOverdueEnforcementOff;
    case v1::ACCOUNT_TAG_WRITTEN_OFF:
      return killbill::kTagWrittenOff;
    default:
      return nullptr;
  }
}

dispatch::Cost AccountOperations::CostOf(
    const v1::CreateAccountRequest& request) const {
  dispatch::Cost cost{1, bus_events_.per_account};
  if (request.tags_size() > 0) {
    cost += dispatch::Cost{1, bus_events_.per_tag * request.tags_size()};
  }
  return cost;
}

absl::StatusOr<v1::CreateAccountResponse> AccountOperations::CreateAccount(
    const v1::CreateAccountRequest& request, KillBillCalls& calls) const {
  killbill::NewAccount account;
  account.external_key = request.external_key();
  account.name = request.name();
  account.email = request.email();
  account.currency = request.currency().empty() ? "USD" : request.currency();
  account.company = request.company();
  account.notes = request.notes();

  v1::CreateAccountResponse response;
  response.set_external_key(request.external_key());
  absl::StatusOr<std::string> id;
  for (;;) {
    id = Call(
        calls, KillBillEndpoint::kCreateAccount, {1, bus_events_.per_account},
        [&] { return client_->CreateAccount(account, UntilDeadline(calls)); });
    if (id.ok() || !absl::IsUnavailable(id.status())) break;
    Clock::Duration backoff{};
    if (!calls.MayRetry(&backoff)) break;
    if (calls.clock()->Now() + backoff >= calls.deadline()) break;
    // Backoff is short (bounded by retry.max_backoff) and only on the worker
    // running this job.
    calls.clock()->SleepUntil(calls.clock()->Now() + backoff);
  }
  if (id.ok()) {
    response.set_account_id(*id);
    response.set_created(true);
  } else if (absl::IsAlreadyExists(id.status())) {
    auto existing = Call(calls, KillBillEndpoint::kGetAccount, kRead, [&] {
      return client_->GetAccountByKey(request.external_key(),
                                      UntilDeadline(calls));
    });
    if (!existing.ok()) return existing.status();
    response.set_account_id(existing->account_id);
    response.set_created(false);
  } else {
    return id.status();
  }

  if (request.tags_size() > 0) {
    std::vector<std::string> tag_ids;
    for (int tag : request.tags())
      tag_ids.emplace_back(TagDefinitionId(v1::AccountTag(tag)));
    const dispatch::Cost tag_cost{1, bus_events_.per_tag * request.tags_size()};
    absl::Status tagged =
        Call(calls, KillBillEndpoint::kAddTags, tag_cost, [&] {
          return client_->AddTags(response.account_id(), tag_ids,
                                  UntilDeadline(calls));
        });
    // Tags already on the account (a repeated registration) are the state asked
    // for.
    if (!tagged.ok() && !absl::IsAlreadyExists(tagged)) return tagged;
  }
  return response;
}

absl::StatusOr<v1::Account> AccountOperations::GetAccount(
    const v1::GetAccountRequest& request, KillBillCalls& calls) const {
  auto account = Call(calls, KillBillEndpoint::kGetAccount, kRead, [&] {
    return request.has_account_id()
               ? client_->GetAccountById(request.account_id(),
                                         UntilDeadline(calls))
               : client_->GetAccountByKey(request.external_key(),
                                          UntilDeadline(calls));
  });
  if (!account.ok()) return account.status();
  return ToProto(*account);
}

}  // namespace bg::service
