#include "service/account_operations.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/killbill_call.h"

namespace bg::service {
namespace v1 = billing::v1;

int KillBillCode(const absl::Status& status) {
  int code = 0;
  if (auto payload = status.GetPayload(killbill::kKillBillCodePayload)) {
    if (!absl::SimpleAtoi(std::string(*payload), &code)) code = 0;
  }
  return code;
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

void RememberAccount(ReadCache* cache, const v1::Account& account) {
  if (cache == nullptr) return;
  cache->account_ids.Put(account.external_key(), account.account_id());
  cache->accounts.Put("id:" + account.account_id(), account);
  cache->accounts.Put("key:" + account.external_key(), account);
}

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
  dispatch::Cost cost{1, bus_events().per_account};
  if (request.tags_size() > 0) {
    cost += dispatch::Cost{1, bus_events().per_tag * request.tags_size()};
  }
  return cost;
}

absl::StatusOr<v1::CreateAccountResponse> AccountOperations::CreateAccount(
    const v1::CreateAccountRequest& request, KillBillCalls& calls) const {
  // The edge validated the request, but a durable one was stored earlier
  // (maybe by another version): an unknown tag is refused before any call.
  std::vector<std::string> tag_ids;
  for (int i = 0; i < request.tags_size(); ++i) {
    const char* id = TagDefinitionId(v1::AccountTag(request.tags(i)));
    if (id == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("tags[", i, "]: unknown tag value ", request.tags(i)));
    }
    tag_ids.emplace_back(id);
  }
  killbill::NewAccount account;
  account.external_key = request.external_key();
  account.name = request.name();
  account.email = request.email();
  account.currency = request.currency().empty() ? "USD" : request.currency();
  account.company = request.company();
  account.notes = request.notes();

  v1::CreateAccountResponse response;
  response.set_external_key(request.external_key());
  // The external key makes a retried create idempotent: a retry that meets
  // 409 finds the first attempt's account. `created` as the proto defines it:
  // a 201, or the key found taken after an attempt that got no answer (which
  // then most likely created it).
  bool unanswered = false;
  absl::StatusOr<std::string> id = CallWithRetry(
      calls, KillBillEndpoint::kCreateAccount, {1, bus_events().per_account},
      [&] {
        auto created = client_->CreateAccount(account, UntilDeadline(calls));
        if (!created.ok() &&
            created.status().GetPayload(killbill::kUnansweredPayload)) {
          unanswered = true;
        }
        return created;
      });
  // Kill Bill says "the key is taken" with 409 and code 3000; a 409 with
  // another code is some other conflict, not a reason to look the key up.
  constexpr int kAccountExists = 3000;
  const int conflict_code = KillBillCode(id.status());
  if (absl::IsAlreadyExists(id.status()) && conflict_code != 0 &&
      conflict_code != kAccountExists) {
    return absl::AbortedError(
        absl::StrCat("Kill Bill answered 409 with code ", conflict_code,
                     ", a conflict other than the external key being taken: ",
                     id.status().message()));
  }
  if (id.ok()) {
    response.set_account_id(*id);
    response.set_created(true);
    if (cache_ != nullptr) cache_->account_ids.Put(request.external_key(), *id);
  } else if (absl::IsAlreadyExists(id.status()) || unanswered) {
    // The key is taken, or an attempt may have created the account although
    // none said so: look before answering. An account found is this call's
    // result; none after a 409 is Kill Bill contradicting itself (retryable,
    // never a final failure while the account may exist); none after
    // unanswered attempts leaves their error standing.
    auto existing = Call(calls, KillBillEndpoint::kGetAccount, kRead, [&] {
      return client_->GetAccountByKey(request.external_key(),
                                      UntilDeadline(calls));
    });
    if (!existing.ok()) {
      if (!absl::IsAlreadyExists(id.status())) return id.status();
      if (absl::IsNotFound(existing.status())) {
        return absl::UnavailableError(absl::StrCat(
            "Kill Bill reported external_key '", request.external_key(),
            "' taken but has no account with it; retry later"));
      }
      return existing.status();
    }
    response.set_account_id(existing->account_id);
    response.set_created(unanswered);
  } else {
    return id.status();
  }

  if (!tag_ids.empty()) {
    const dispatch::Cost tag_cost{1,
                                  bus_events().per_tag * request.tags_size()};
    absl::Status tagged =
        Call(calls, KillBillEndpoint::kAddTags, tag_cost, [&] {
          return client_->AddTags(response.account_id(), tag_ids,
                                  UntilDeadline(calls));
        });
    // Tags already on the account (a repeated registration) are the state asked
    // for. Other refusals come after the account exists, so they never blame
    // the caller's request: a 400 is the gateway's or Kill Bill's fault
    // (INTERNAL); a 404 means Kill Bill does not see the account yet
    // (UNAVAILABLE: a retry meets the key taken, finds the account, tags it).
    if (absl::IsInvalidArgument(tagged)) {
      return absl::InternalError(absl::StrCat(
          "account ", response.account_id(),
          " was created, but Kill Bill refused its tags: ", tagged.message()));
    }
    if (absl::IsNotFound(tagged)) {
      return absl::UnavailableError(absl::StrCat(
          "account ", response.account_id(),
          " was created, but Kill Bill did not find it to tag it; retry: ",
          tagged.message()));
    }
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
  v1::Account out = ToProto(*account);
  RememberAccount(cache_, out);
  return out;
}

std::optional<Cached<v1::Account>> AccountOperations::FromCache(
    const v1::GetAccountRequest& request, Clock::Duration max_age) const {
  if (cache_ == nullptr) return std::nullopt;
  auto hit = cache_->accounts.Find(request.has_account_id()
                                       ? "id:" + request.account_id()
                                       : "key:" + request.external_key(),
                                   max_age);
  if (!hit) return std::nullopt;
  return Cached<v1::Account>{std::move(hit->value), hit->age};
}

}  // namespace bg::service
