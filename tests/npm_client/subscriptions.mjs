// Acceptance check of killbill-sim's subscription side with Kill Bill's
// official JavaScript client (npm `killbill`, generated from Kill Bill's
// OpenAPI spec, axios based): the calls SaaSOdoo's billing service and
// frontend make, through the client's own API classes, against a running sim.
//
//   node subscriptions.mjs http://127.0.0.1:PORT
//
// Exits 0 after printing how many checks passed; on the first failure prints
// what was expected and what came, and exits 1.
import axios from 'axios';
import killbill from 'killbill';

const base = process.argv[2];
if (!base) {
  console.error('usage: node subscriptions.mjs SIM_BASE_URL');
  process.exit(2);
}

const CREATED_BY = 'npm-client-check';
const TRIAL_PLAN = 'basic-monthly';
const PAID_PLAN = 'standard-monthly';
const DAY_MS = 24 * 3600 * 1000;

let passed = 0;
class CheckFailed extends Error {}
function check(condition, what, got) {
  if (!condition) {
    throw new CheckFailed(`${what}${got === undefined ? '' : `; got ${JSON.stringify(got)}`}`);
  }
  ++passed;
}
function hasFields(object, fields, what) {
  check(object !== null && typeof object === 'object', `${what} is an object`, object);
  for (const field of fields) {
    check(field in object, `${what} has field ${field}`, Object.keys(object));
  }
}
const lastSegment = (location) => location.substring(location.lastIndexOf('/') + 1);
// YYYY-MM-DD of a UTC date `days` after `day` (YYYY-MM-DD).
const plusDays = (day, days) =>
  new Date(Date.parse(`${day}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);

const config = new killbill.Configuration({
  username: 'admin',
  password: 'password',
  apiKey: killbill.apiKey('fresh-tenant', 'fresh-secret'),
  basePath: base,
});
const http = axios.create();
// The client's documented way to get a created object back: follow the
// (absolute) Location of a 201.
const following = axios.create();
following.interceptors.response.use(killbill.followLocationHeaderInterceptor);

const accounts = new killbill.AccountApi(config, base, http);
const subscriptions = new killbill.SubscriptionApi(config, base, http);
const subscriptionsFollowing = new killbill.SubscriptionApi(config, base, following);
const bundles = new killbill.BundleApi(config, base, http);
const catalog = new killbill.CatalogApi(config, base, http);

const SUBSCRIPTION_FIELDS = [
  'accountId', 'bundleId', 'subscriptionId', 'externalKey', 'bundleExternalKey',
  'startDate', 'productName', 'productCategory', 'billingPeriod', 'phaseType',
  'priceList', 'planName', 'state', 'sourceType', 'cancelledDate',
  'chargedThroughDate', 'billingStartDate', 'billingEndDate', 'billCycleDayLocal',
  'quantity', 'events', 'prices', 'priceOverrides'];
const EVENT_FIELDS = [
  'eventId', 'billingPeriod', 'effectiveDate', 'catalogEffectiveDate', 'plan',
  'product', 'priceList', 'eventType', 'isBlockedBilling', 'isBlockedEntitlement',
  'serviceName', 'serviceStateName', 'phase', 'auditLogs'];
const INVOICE_FIELDS = [
  'amount', 'currency', 'status', 'creditAdj', 'refundAdj', 'invoiceId',
  'invoiceDate', 'targetDate', 'invoiceNumber', 'balance', 'accountId',
  'bundleKeys', 'credits', 'items', 'trackingIds', 'isParentInvoice',
  'parentInvoiceId', 'parentAccountId', 'auditLogs'];

async function main() {
  const suffix = `${process.pid}-${Date.now()}`;
  const instanceId = `instance-${suffix}`;

  // Account (SaaSOdoo's registration).
  const created = await accounts.createAccount(
    { externalKey: `customer-${suffix}`, name: 'Npm Client', currency: 'USD' }, CREATED_BY);
  check(created.status === 201, 'createAccount answers 201', created.status);
  const accountId = lastSegment(created.headers.location ?? '');
  check(accountId.length === 36, 'createAccount gives a Location ending in the id',
        created.headers.location);

  // Subscription, with the Location followed by the client's interceptor.
  const subscribed = await subscriptionsFollowing.createSubscription(
    { accountId, planName: TRIAL_PLAN, bundleExternalKey: instanceId }, CREATED_BY,
    undefined, undefined, undefined, undefined, undefined, true, 10);
  check(subscribed.status === 201, 'createSubscription answers 201', subscribed.status);
  const subscriptionId = lastSegment(subscribed.headers.location ?? '');
  check(subscribed.headers.location?.startsWith(`${base}/1.0/kb/subscriptions/`),
        'createSubscription Location is absolute', subscribed.headers.location);
  check(subscribed.data?.subscriptionId === subscriptionId,
        'followLocationHeaderInterceptor brings the new subscription', subscribed.data);

  const sub = (await subscriptions.getSubscription(subscriptionId)).data;
  hasFields(sub, SUBSCRIPTION_FIELDS, 'Subscription');
  check(sub.accountId === accountId, 'Subscription.accountId', sub.accountId);
  check(sub.planName === TRIAL_PLAN, 'Subscription.planName', sub.planName);
  check(sub.bundleExternalKey === instanceId, 'Subscription.bundleExternalKey',
        sub.bundleExternalKey);
  check(sub.phaseType === 'TRIAL', 'a basic plan starts in TRIAL', sub.phaseType);
  check(sub.state === 'ACTIVE', 'Subscription.state', sub.state);
  check(sub.productCategory === 'BASE', 'Subscription.productCategory', sub.productCategory);
  check(sub.cancelledDate === null, 'Subscription.cancelledDate is null', sub.cancelledDate);
  for (const event of sub.events) hasFields(event, EVENT_FIELDS, 'Subscription event');
  const phase = sub.events.find((e) => e.eventType === 'PHASE');
  const trialEnd = plusDays(sub.startDate, 14);
  check(phase?.effectiveDate === trialEnd, 'the PHASE event is 14 days after the start',
        sub.events);
  check(phase?.phase === `${TRIAL_PLAN}-evergreen`, 'the PHASE event enters the evergreen',
        phase);

  // Custom field (SaaSOdoo's instance_id).
  const field = await subscriptions.createSubscriptionCustomFields(
    [{ name: 'instance_id', value: instanceId }], subscriptionId, CREATED_BY);
  check(field.status === 201, 'createSubscriptionCustomFields answers 201', field.status);
  const fields = (await subscriptions.getSubscriptionCustomFields(subscriptionId)).data;
  check(Array.isArray(fields) && fields.length === 1, 'one custom field', fields);
  hasFields(fields[0], ['customFieldId', 'objectId', 'objectType', 'name', 'value'],
            'CustomField');
  check(fields[0].objectId === subscriptionId && fields[0].objectType === 'SUBSCRIPTION' &&
        fields[0].name === 'instance_id' && fields[0].value === instanceId,
        'the custom field is the one added', fields[0]);

  // Bundles, by key and by account.
  const byKey = (await bundles.getBundleByKey(instanceId)).data;
  check(Array.isArray(byKey) && byKey.length === 1, 'getBundleByKey gives one bundle', byKey);
  hasFields(byKey[0], ['accountId', 'bundleId', 'externalKey', 'subscriptions', 'timeline'],
            'Bundle');
  check(byKey[0].bundleId === sub.bundleId &&
        byKey[0].subscriptions[0]?.subscriptionId === subscriptionId,
        'the bundle holds the subscription', byKey[0]);
  const byAccount = (await accounts.getAccountBundles(accountId)).data;
  check(Array.isArray(byAccount) && byAccount.length === 1 &&
        byAccount[0].externalKey === instanceId, 'getAccountBundles', byAccount);

  // Catalog.
  const catalogs = (await catalog.getCatalogJson()).data;
  check(Array.isArray(catalogs) && catalogs[0]?.name === 'SaasOdoo', 'getCatalogJson',
        catalogs?.[0]?.name);
  const plans = catalogs[0].products.flatMap((p) => p.plans);
  check(plans.length === 12, 'the catalog has 12 plans', plans.map((p) => p.name));

  // A paid plan: its first invoice stays unpaid (AUTO_PAY_OFF).
  const unpaidBefore =
    (await accounts.getInvoicesForAccount(accountId, undefined, undefined, undefined, true)).data;
  check(Array.isArray(unpaidBefore) && unpaidBefore.length === 0,
        'a $0 trial leaves no unpaid invoice', unpaidBefore);
  const paid = await subscriptions.createSubscription(
    { accountId, planName: PAID_PLAN }, CREATED_BY);
  check(paid.status === 201, 'createSubscription of a paid plan', paid.status);
  const unpaid =
    (await accounts.getInvoicesForAccount(accountId, undefined, undefined, undefined, true)).data;
  check(Array.isArray(unpaid) && unpaid.length === 1, 'one unpaid invoice', unpaid);
  hasFields(unpaid[0], INVOICE_FIELDS, 'Invoice');
  const price = plans.find((p) => p.name === PAID_PLAN).phases.at(-1).prices[0].value;
  check(unpaid[0].balance === price && unpaid[0].amount === price,
        `the unpaid invoice is the plan's price ${price}`, unpaid[0]);
  const all = (await accounts.getInvoicesForAccount(accountId)).data;
  check(all.length === 2, 'two invoices in all', all.length);

  // Payment methods and the balance.
  const methods = (await accounts.getPaymentMethodsForAccount(accountId)).data;
  check(Array.isArray(methods) && methods.length === 0, 'no payment method', methods);
  const account = (await accounts.getAccount(accountId, undefined, true)).data;
  check(account.accountBalance === price, 'accountBalance is the unpaid total',
        account.accountBalance);
  check(account.accountCBA === 0, 'accountCBA is 0', account.accountCBA);

  // Cancellation at the end of the term (SaaSOdoo's parameters): the trial's end.
  const cancelled = await subscriptions.cancelSubscriptionPlan(
    subscriptionId, CREATED_BY, undefined, true, 10, 'END_OF_TERM', 'END_OF_TERM', true);
  check(cancelled.status === 204, 'cancelSubscriptionPlan answers 204', cancelled.status);
  const after = (await subscriptions.getSubscription(subscriptionId)).data;
  check(after.cancelledDate === trialEnd, 'an END_OF_TERM cancel ends at the trial end',
        after.cancelledDate);

  // Errors as Kill Bill's body.
  try {
    await subscriptions.getSubscription('11111111-2222-4333-8444-555555555555');
    check(false, 'an unknown subscription is an error');
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    check(e.response?.status === 404 && e.response?.data?.code === 1082,
          'an unknown subscription is 404 code 1082', e.response?.data);
  }
  try {
    await subscriptions.createSubscription(
      { accountId, planName: TRIAL_PLAN, bundleExternalKey: instanceId }, CREATED_BY);
    check(false, 'a second base subscription on the bundle key is an error');
  } catch (e) {
    if (e instanceof CheckFailed) throw e;
    check(e.response?.status === 400 && e.response?.data?.code === 1015,
          'a second base subscription on the bundle key is 400 code 1015', e.response?.data);
  }
}

try {
  await main();
  console.log(`subscriptions.mjs: all ${passed} checks passed`);
} catch (e) {
  if (e instanceof CheckFailed) {
    console.error(`subscriptions.mjs: FAILED: ${e.message}`);
  } else {
    const r = e.response;
    console.error(`subscriptions.mjs: FAILED: ${e.message}` +
                  (r ? ` (${r.config?.method?.toUpperCase()} ${r.config?.url} -> ${r.status} ` +
                       `${JSON.stringify(r.data)})` : ''));
  }
  console.error(`subscriptions.mjs: ${passed} checks passed before the failure`);
  process.exit(1);
}
