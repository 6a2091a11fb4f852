#include "durable/operation_store.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bg::durable {
namespace {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// Append-only: a released migration is never edited, a change is a new version.
constexpr Migration kMigrations[] = {
    {1, "operations and replicas", R"sql(
CREATE TABLE operations (
  id            BIGSERIAL PRIMARY KEY,
  external_key  TEXT NOT NULL UNIQUE,
  kind          TEXT NOT NULL DEFAULT 'create_account',
  request       BYTEA NOT NULL,
  state         TEXT NOT NULL DEFAULT 'PENDING'
                CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
  attempts      INTEGER NOT NULL DEFAULT 0,
  not_before    TIMESTAMPTZ NOT NULL DEFAULT now(),
  lease_owner   TEXT,
  lease_until   TIMESTAMPTZ,
  account_id    TEXT,
  created       BOOLEAN,
  error_code    INTEGER,
  killbill_code TEXT,
  error_message TEXT,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at   TIMESTAMPTZ
);
-- Claiming and queue statistics scan only unfinished rows, in id order.
CREATE INDEX operations_unfinished ON operations (id) WHERE state IN ('PENDING', 'RUNNING');
-- Retention scans finished rows by age.
CREATE INDEX operations_finished_at ON operations (finished_at)
  WHERE state IN ('SUCCEEDED', 'FAILED');
CREATE TABLE replicas (
  id          TEXT PRIMARY KEY,
  started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_seen   TIMESTAMPTZ NOT NULL DEFAULT now()
);
)sql"},
    {2, "subscriptions: kind in the idempotency key", R"sql(
ALTER TABLE operations ADD COLUMN subscription_id TEXT;
ALTER TABLE operations ADD COLUMN account_key TEXT;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check
  CHECK (kind IN ('create_account', 'create_subscription'));
ALTER TABLE operations DROP CONSTRAINT operations_external_key_key;
ALTER TABLE operations ADD CONSTRAINT operations_kind_external_key_key
  UNIQUE (kind, external_key);
)sql"},
};

constexpr char kColumns[] =
    "id, external_key, state, attempts, account_id, created, error_code, "
    "killbill_code, "
    "error_message, (extract(epoch from created_at) * 1000)::bigint, "
    "(extract(epoch from updated_at) * 1000)::bigint, "
    "(extract(epoch from finished_at) * 1000)::bigint, "
    "(extract(epoch from not_before) * 1000)::bigint, kind, subscription_id, "
    "account_key";

OperationState StateFromText(const std::string& s) {
  if (s == "RUNNING") return OperationState::kRunning;
  if (s == "SUCCEEDED") return OperationState::kSucceeded;
  if (s == "FAILED") return OperationState::kFailed;
  return OperationState::kPending;
}

OperationKind KindFromText(const std::string& s) {
  return s == "create_subscription" ? OperationKind::kCreateSubscription
                                    : OperationKind::kCreateAccount;
}

OperationRecord RecordAt(const PgResult& r, int row) {
  OperationRecord op;
  op.id = r.Int(row, 0);
  op.external_key = r.Text(row, 1);
  op.state = StateFromText(r.Text(row, 2));
  op.attempts = static_cast<int>(r.Int(row, 3));
  op.account_id = r.IsNull(row, 4) ? "" : r.Text(row, 4);
  op.created = !r.IsNull(row, 5) && r.Bool(row, 5);
  op.error_code = static_cast<int>(r.Int(row, 6));
  op.killbill_code = r.IsNull(row, 7) ? "" : r.Text(row, 7);
  op.error_message = r.IsNull(row, 8) ? "" : r.Text(row, 8);
  op.created_at_ms = r.Int(row, 9);
  op.updated_at_ms = r.Int(row, 10);
  op.finished_at_ms = r.Int(row, 11);
  op.not_before_ms = r.Int(row, 12);
  op.kind = KindFromText(r.Text(row, 13));
  op.subscription_id = r.IsNull(row, 14) ? "" : r.Text(row, 14);
  op.account_key = r.IsNull(row, 15) ? "" : r.Text(row, 15);
  return op;
}

// The (kind, key) pair as one map key.
std::string KindKey(OperationKind kind, const std::string& key) {
  return absl::StrCat(OperationKindName(kind), "/", key);
}

std::string Millis(Clock::Duration d) {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// "$first, $first+1, ..." for `n` parameters.
std::string Placeholders(int first, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) absl::StrAppend(&out, i ? ", $" : "$", first + i);
  return out;
}

}  // namespace

const char* OperationStateName(OperationState state) {
  switch (state) {
    case OperationState::kPending:
      return "PENDING";
    case OperationState::kRunning:
      return "RUNNING";
    case OperationState::kSucceeded:
      return "SUCCEEDED";
    case OperationState::kFailed:
      return "FAILED";
  }
  return "PENDING";
}

const char* OperationKindName(OperationKind kind) {
  return kind == OperationKind::kCreateSubscription ? "create_subscription"
                                                    : "create_account";
}

int OperationStore::LatestVersion() {
  return kMigrations[sizeof(kMigrations) / sizeof(kMigrations[0]) - 1].version;
}

absl::Status OperationStore::Migrate() {
  return session_->InTransaction([&]() -> absl::Status {
    // Serializes concurrent starters; released at COMMIT/ROLLBACK.
    auto lock = session_->Exec(
        absl::StrCat("SELECT pg_advisory_xact_lock(", kMigrationLockKey, ")"));
    if (!lock.ok()) return lock.status();
    auto table = session_->Exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
    if (!table.ok()) return table.status();
    auto applied = session_->Exec("SELECT version FROM schema_migrations");
    if (!applied.ok()) return applied.status();
    std::map<int64_t, bool> done;
    for (int i = 0; i < applied->rows(); ++i) done[applied->Int(i, 0)] = true;
    for (const Migration& m : kMigrations) {
      if (done.count(m.version)) continue;
      auto run = session_->Exec(m.sql);
      if (!run.ok()) {
        return absl::Status(run.status().code(),
                            absl::StrCat("migration ", m.version, " (", m.name,
                                         "): ", run.status().message()));
      }
      auto record = session_->Exec(
          "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
          {PgParam::Int(m.version), PgParam::Text(m.name)});
      if (!record.ok()) return record.status();
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<OperationRecord>> OperationStore::SubmitBatch(
    const std::vector<Submission>& submissions) {
  std::vector<OperationRecord> out(submissions.size());
  if (submissions.empty()) return out;
  // Distinct (kind, key) pairs (a batch may hold the same pair twice: both get
  // the same operation).
  std::unordered_map<std::string, size_t> first_of_key;
  std::vector<PgParam> params;
  std::vector<PgParam> key_params;
  std::string values;
  std::string key_values;
  for (size_t i = 0; i < submissions.size(); ++i) {
    const Submission& sub = submissions[i];
    if (!first_of_key.emplace(KindKey(sub.kind, sub.external_key), i).second)
      continue;
    const int p = static_cast<int>(params.size()) + 1;
    absl::StrAppend(&values, values.empty() ? "" : ", ", "($", p, "::text, $",
                    p + 1, "::text, $", p + 2, "::bytea, $", p + 3, "::text)");
    params.push_back(PgParam::Text(OperationKindName(sub.kind)));
    params.push_back(PgParam::Text(sub.external_key));
    params.push_back(PgParam::Bytes(sub.request));
    params.push_back(sub.account_key.empty() ? PgParam::Null()
                                             : PgParam::Text(sub.account_key));
    const int k = static_cast<int>(key_params.size()) + 1;
    absl::StrAppend(&key_values, key_values.empty() ? "" : ", ", "($", k,
                    "::text, $", k + 1, "::text)");
    key_params.push_back(PgParam::Text(OperationKindName(sub.kind)));
    key_params.push_back(PgParam::Text(sub.external_key));
  }

  // One statement, one commit: rows inserted now come back from the CTE, rows
  // that existed before the statement's snapshot from the SELECT.
  const std::string sql = absl::StrCat(
      "WITH input (kind, external_key, request, account_key) AS (VALUES ",
      values,
      "), "
      "ins AS (INSERT INTO operations (kind, external_key, request, "
      "account_key) SELECT kind, external_key, request, account_key FROM input "
      "ON CONFLICT (kind, external_key) DO NOTHING RETURNING ",
      kColumns,
      ") "
      "SELECT * FROM ins UNION ALL SELECT ",
      kColumns,
      " FROM operations "
      "WHERE (kind, external_key) IN (SELECT kind, external_key FROM input) "
      "AND (kind, external_key) NOT IN (SELECT kind, external_key FROM ins)");
  auto result = session_->Exec(sql, params);
  if (!result.ok()) return result.status();
  std::unordered_map<std::string, OperationRecord> by_key;
  for (int r = 0; r < result->rows(); ++r) {
    OperationRecord op = RecordAt(*result, r);
    by_key[KindKey(op.kind, op.external_key)] = std::move(op);
  }
  if (by_key.size() < first_of_key.size()) {
    // A concurrent transaction inserted a key after our snapshot began: read it
    // now.
    auto again = session_->Exec(
        absl::StrCat("SELECT ", kColumns,
                     " FROM operations WHERE (kind, external_key) IN (VALUES ",
                     key_values, ")"),
        key_params);
    if (!again.ok()) return again.status();
    for (int r = 0; r < again->rows(); ++r) {
      OperationRecord op = RecordAt(*again, r);
      by_key[KindKey(op.kind, op.external_key)] = std::move(op);
    }
  }
  for (size_t i = 0; i < submissions.size(); ++i) {
    auto it =
        by_key.find(KindKey(submissions[i].kind, submissions[i].external_key));
    if (it == by_key.end()) {
      // Deleted by retention between insert and read: vanishingly rare; let the
      // caller retry.
      return absl::AbortedError(
          "operation vanished while being submitted; retry");
    }
    out[i] = it->second;
  }
  return out;
}

absl::StatusOr<std::vector<OperationRecord>> OperationStore::GetMany(
    const std::vector<int64_t>& ids) {
  std::vector<OperationRecord> out;
  if (ids.empty()) return out;
  std::vector<PgParam> params;
  for (int64_t id : ids) params.push_back(PgParam::Int(id));
  auto result = session_->Exec(
      absl::StrCat("SELECT ", kColumns, " FROM operations WHERE id IN (",
                   Placeholders(1, static_cast<int>(ids.size())), ")"),
      params);
  if (!result.ok()) return result.status();
  for (int r = 0; r < result->rows(); ++r) out.push_back(RecordAt(*result, r));
  return out;
}

absl::StatusOr<std::optional<OperationRecord>> OperationStore::Get(int64_t id) {
  auto many = GetMany({id});
  if (!many.ok()) return many.status();
  if (many->empty()) return std::optional<OperationRecord>();
  return std::optional<OperationRecord>(std::move(many->front()));
}

absl::StatusOr<std::optional<OperationRecord>> OperationStore::GetByKey(
    OperationKind kind, const std::string& external_key) {
  auto result = session_->Exec(
      absl::StrCat("SELECT ", kColumns,
                   " FROM operations WHERE kind = $1 AND external_key = $2"),
      {PgParam::Text(OperationKindName(kind)), PgParam::Text(external_key)});
  if (!result.ok()) return result.status();
  if (result->rows() == 0) return std::optional<OperationRecord>();
  return std::optional<OperationRecord>(RecordAt(*result, 0));
}

absl::StatusOr<std::vector<ClaimedOperation>> OperationStore::Claim(
    const std::string& owner, int limit, Clock::Duration lease,
    int max_attempts) {
  auto exhausted = session_->Exec(
      "UPDATE operations SET state = 'FAILED', error_code = $2,"
      "  error_message = 'gave up after ' || attempts || ' attempts that never"
      " finished: each gateway running it stopped (crashed, was killed or lost"
      " the database) before recording an outcome',"
      "  lease_owner = NULL, lease_until = NULL, finished_at = now(),"
      "  updated_at = now() "
      "WHERE state = 'RUNNING' AND lease_until < now() AND attempts >= $1",
      {PgParam::Int(max_attempts),
       PgParam::Int(static_cast<int>(absl::StatusCode::kAborted))});
  if (!exhausted.ok()) return exhausted.status();
  // MATERIALIZED: the locking subquery runs once, so LIMIT and SKIP LOCKED mean
  // what they say.
  auto result = session_->Exec(
      "WITH c AS MATERIALIZED ("
      "  SELECT id, state FROM operations"
      "  WHERE state IN ('PENDING', 'RUNNING')"
      "    AND ((state = 'PENDING' AND not_before <= now())"
      "      OR (state = 'RUNNING' AND lease_until < now() AND attempts < $4))"
      "  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) "
      "UPDATE operations o SET state = 'RUNNING', lease_owner = $1,"
      "  lease_until = now() + $3 * interval '1 millisecond',"
      "  attempts = o.attempts + 1, updated_at = now() "
      "FROM c WHERE o.id = c.id "
      "RETURNING o.id, o.external_key, o.request, o.attempts, c.state, "
      "o.kind",
      {PgParam::Text(owner), PgParam::Int(limit), PgParam::Text(Millis(lease)),
       PgParam::Int(max_attempts)});
  if (!result.ok()) return result.status();
  std::vector<ClaimedOperation> out;
  out.reserve(result->rows());
  for (int r = 0; r < result->rows(); ++r) {
    ClaimedOperation c;
    c.id = result->Int(r, 0);
    c.external_key = result->Text(r, 1);
    c.request = result->Bytes(r, 2);
    c.attempts = static_cast<int>(result->Int(r, 3));
    c.lease_expired = result->Text(r, 4) == "RUNNING";
    c.kind = KindFromText(result->Text(r, 5));
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(),
            [](const ClaimedOperation& a, const ClaimedOperation& b) {
              return a.id < b.id;
            });
  return out;
}

absl::StatusOr<int> OperationStore::Finish(
    const std::string& owner, const std::vector<Outcome>& outcomes) {
  int applied = 0;
  absl::Status status = session_->InTransaction([&]() -> absl::Status {
    for (const Outcome& o : outcomes) {
      const char* fence =
          " WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = "
          "'RUNNING'";
      std::vector<PgParam> p = {PgParam::Int(o.id), PgParam::Text(owner),
                                PgParam::Int(o.attempts)};
      std::string sql;
      switch (o.kind) {
        case Outcome::Kind::kSucceeded:
          sql =
              "UPDATE operations SET state = 'SUCCEEDED', account_id = $4, "
              "created = $5, subscription_id = $6,"
              " error_code = NULL, killbill_code = NULL, error_message = NULL,"
              " lease_owner = NULL, lease_until = NULL, finished_at = now(), "
              "updated_at = now()";
          p.push_back(PgParam::Text(o.account_id));
          p.push_back(PgParam::Text(o.created ? "true" : "false"));
          p.push_back(o.subscription_id.empty()
                          ? PgParam::Null()
                          : PgParam::Text(o.subscription_id));
          break;
        case Outcome::Kind::kFailed:
          sql =
              "UPDATE operations SET state = 'FAILED', error_code = $4, "
              "killbill_code = $5,"
              " error_message = $6, lease_owner = NULL, lease_until = NULL,"
              " finished_at = now(), updated_at = now()";
          p.push_back(PgParam::Int(o.error_code));
          p.push_back(o.killbill_code.empty() ? PgParam::Null()
                                              : PgParam::Text(o.killbill_code));
          p.push_back(PgParam::Text(o.error_message));
          break;
        case Outcome::Kind::kRetry:
        case Outcome::Kind::kRelease:
          sql = absl::StrCat(
              "UPDATE operations SET state = 'PENDING', error_code = $4, "
              "killbill_code = $5,"
              " error_message = $6, lease_owner = NULL, lease_until = NULL,"
              " not_before = now() + $7 * interval '1 millisecond', updated_at "
              "= now()",
              o.kind == Outcome::Kind::kRelease ? ", attempts = attempts - 1"
                                                : "");
          p.push_back(PgParam::Int(o.error_code));
          p.push_back(o.killbill_code.empty() ? PgParam::Null()
                                              : PgParam::Text(o.killbill_code));
          p.push_back(PgParam::Text(o.error_message));
          p.push_back(PgParam::Text(Millis(o.backoff)));
          break;
      }
      auto r = session_->Exec(sql + fence, p);
      if (!r.ok()) return r.status();
      applied += static_cast<int>(r->affected());
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return applied;
}

absl::StatusOr<int64_t> OperationStore::RenewLeases(const std::string& owner,
                                                    Clock::Duration lease) {
  auto r = session_->Exec(
      "UPDATE operations SET lease_until = now() + $2 * interval '1 "
      "millisecond' "
      "WHERE lease_owner = $1 AND state = 'RUNNING'",
      {PgParam::Text(owner), PgParam::Text(Millis(lease))});
  if (!r.ok()) return r.status();
  return r->affected();
}

absl::StatusOr<int> OperationStore::Heartbeat(const std::string& replica,
                                              Clock::Duration timeout,
                                              Clock::Duration forget_after) {
  auto up = session_->Exec(
      "INSERT INTO replicas (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET "
      "last_seen = now()",
      {PgParam::Text(replica)});
  if (!up.ok()) return up.status();
  auto count = session_->Exec(
      "SELECT count(*) FROM replicas WHERE last_seen > now() - $1 * interval "
      "'1 millisecond'",
      {PgParam::Text(Millis(timeout))});
  if (!count.ok()) return count.status();
  auto forget = session_->Exec(
      "DELETE FROM replicas WHERE last_seen < now() - $1 * interval '1 "
      "millisecond'",
      {PgParam::Text(Millis(forget_after))});
  if (!forget.ok()) return forget.status();
  return static_cast<int>(std::max<int64_t>(1, count->Int(0, 0)));
}

absl::Status OperationStore::RemoveReplica(const std::string& replica) {
  auto r = session_->Exec("DELETE FROM replicas WHERE id = $1",
                          {PgParam::Text(replica)});
  return r.status();
}

absl::StatusOr<int64_t> OperationStore::PurgeFinished(Clock::Duration retention,
                                                      int batch) {
  auto r = session_->Exec(
      "DELETE FROM operations WHERE id IN (SELECT id FROM operations"
      " WHERE state IN ('SUCCEEDED', 'FAILED')"
      "   AND finished_at < now() - $1 * interval '1 millisecond' LIMIT $2)",
      {PgParam::Text(Millis(retention)), PgParam::Int(batch)});
  if (!r.ok()) return r.status();
  return r->affected();
}

absl::StatusOr<QueueStats> OperationStore::Stats() {
  auto r = session_->Exec(
      "SELECT count(*) FILTER (WHERE state = 'PENDING'),"
      "       count(*) FILTER (WHERE state = 'RUNNING'),"
      "       coalesce(extract(epoch from now() - min(created_at)"
      "                FILTER (WHERE state = 'PENDING')), 0)::float8 "
      "FROM operations WHERE state IN ('PENDING', 'RUNNING')");
  if (!r.ok()) return r.status();
  QueueStats s;
  s.pending = r->Int(0, 0);
  s.running = r->Int(0, 1);
  s.oldest_pending_age_s = r->Double(0, 2);
  return s;
}

}  // namespace bg::durable
