// What the card asks Paydeck and how it reads the answer: no React here, so the rules are
// tested on their own (Card.test.tsx).
import type { HubSpotFetchOptions, HubSpotFetchRequestURI } from '@hubspot/ui-extensions';

// Must stay under permittedUrls.fetch in app-hsmeta.json. The deploy replaces the placeholder
// host with PUBLIC_URL (app_manifest/README.md).
export const CARD_URL = 'https://paydeck.example.com/hubspot/card';

// hubspot.fetch gives up after this long; HubSpot's own ceiling is 15 s (developers.hubspot.com,
// "Fetching data": `timeout`, "or 15 seconds, whichever is smaller").
export const FETCH_TIMEOUT_MS = 10_000;

// HubSpot's object type ids -> the objectType Paydeck's card endpoint takes.
const OBJECT_TYPES: Record<string, ObjectType> = { '0-3': 'deals', '0-2': 'companies' };

export type ObjectType = 'deals' | 'companies';

/** The signature of `hubspot.fetch`; tests pass their own. */
export type CardFetch = (url: HubSpotFetchRequestURI, options?: HubSpotFetchOptions) => Promise<Response>;

export interface ReviewItem {
  id: number;
  reason: string;
  reason_label: string;
  /** Absent when amounts are hidden from this viewer (details quote amounts). */
  detail?: string;
  created_at: string;
}

export type CrmState = 'ok' | 'failing' | 'reconnect_needed';
export type XeroState = 'connected' | 'not_connected' | 'failing' | 'reconnect_needed';

export interface ConnectionPart<TState extends string> {
  state: TState;
  message: string | null;
}

/** An open `reconnect_needed` review item of the whole installation (no deal): a banner on
 * every card (app/card_data/alerts.py `installation_alerts`). `fixed`: the connection works again. */
export interface InstallationAlert {
  id: number;
  reason: string;
  title: string;
  detail: string;
  fixed: boolean;
  created_at: string;
}

/** How Paydeck's links to the CRM and to Xero stand (absent from older backends). */
export interface Connection {
  crm: ConnectionPart<CrmState>;
  xero: ConnectionPart<XeroState>;
}

/** One invoice line as Xero booked it: each amount as the exact decimal string and as text. */
export interface InvoiceLine {
  description: string;
  quantity: string | null;
  quantity_text: string;
  unit_amount: string | null;
  unit_amount_text: string;
  discount_rate: string | null;
  /** "10%" or "AUD 5.00" ("" for none). */
  discount_text: string;
  /** "200 · Sales" */
  account: string;
  tax_type: string;
  /** "GST on Income (10%)" */
  tax: string;
  tax_amount: string | null;
  tax_amount_text: string;
  line_amount: string | null;
  line_amount_text: string;
}

export interface InvoicePayment {
  date: string | null;
  date_text: string | null;
  amount: string | null;
  amount_text: string;
  reference: string;
}

export interface InvoiceAllocation {
  kind: 'credit_note' | 'prepayment' | 'overpayment';
  /** "Credit note CN-0003", "Prepayment" */
  label: string;
  date: string | null;
  date_text: string | null;
  amount: string | null;
  amount_text: string;
}

/** The whole invoice from Paydeck's database (app/invoice_view.py `card_json`). */
export interface WholeInvoice {
  line_amount_types: string;
  lines: InvoiceLine[];
  subtotal: string | null;
  subtotal_text: string;
  total_tax: string | null;
  total_tax_text: string;
  total: string | null;
  total_text: string;
  amount_paid: string | null;
  amount_paid_text: string;
  amount_due: string | null;
  amount_due_text: string;
  paid_on: string | null;
  paid_on_text: string | null;
  payments: InvoicePayment[];
  allocations: InvoiceAllocation[];
  /** "Voided" / "Deleted": nothing is due. */
  ended: string | null;
  /** "Due AUD 3,036.00", or "Voided". */
  due_text: string;
  /** How the lines became the total (tax added on exclusive amounts...). */
  explanation: string;
  /** "Emailed to ap@example.com on ..." */
  emailed: string | null;
  customer_url: string | null;
  synced_text: string | null;
}

/** `GET /hubspot/card` (app/views/cards.py `hubspot_card`). Money arrives as decimal strings.
 * A viewer who may not see money (app/access/rules.py `may_see_money`) gets `amounts_hidden` instead
 * of total / amount_due / amount_paid / currency / invoice_url and of review item details. */
export interface CardData {
  open_url: string;
  review_url: string;
  settings_url?: string;
  /** Whether this viewer may push, re-push or retry (app/access/rules.py `may_act`); see `mayAct`. */
  may_act?: boolean;
  /** "Amounts hidden by your admin's settings" (app/access/rules.py AMOUNTS_HIDDEN) when hidden. */
  amounts_hidden?: string;
  invoiced?: boolean;
  status?: string;
  deal_status?: string | null;
  invoice_number?: string | null;
  currency?: string | null;
  total?: string | null;
  amount_due?: string | null;
  amount_paid?: string | null;
  /** The same amounts as the viewer reads them ("AUD 3,036.00", Babel on the server). */
  total_text?: string | null;
  amount_due_text?: string | null;
  amount_paid_text?: string | null;
  due_date?: string | null;
  /** The due date in the viewer's locale ("21 Dec 2026"). */
  due_date_text?: string | null;
  invoice_url?: string | null;
  /** The whole invoice; absent before invoicing and when amounts are hidden. */
  invoice?: WholeInvoice;
  /** Xero's PDF through Paydeck (a page token for this deal); absent as `invoice` is. */
  pdf_url?: string;
  open_review_items?: number;
  review_items?: ReviewItem[];
  connection?: Connection;
  installation_alerts?: InstallationAlert[];
}

export interface Problem {
  title: string;
  message: string;
  /** Whether trying again could help (a 404 "not installed" will not). */
  retry: boolean;
}

export type CardResult = { kind: 'ok'; data: CardData } | { kind: 'error'; problem: Problem };

export function objectTypeOf(objectTypeId: string): ObjectType {
  return OBJECT_TYPES[objectTypeId] ?? 'deals';
}

/** The card's URL. `locale` (context.user.locale) and `timezone` (context.portal.timezone)
 * let Paydeck format amounts and times as this user reads them. */
export function cardUrl(objectType: ObjectType, objectId: number | string, locale?: string | null,
  timezone?: string | null): string {
  const query = new URLSearchParams({ objectType, objectId: String(objectId) });
  if (locale) query.set('locale', locale);
  if (timezone) query.set('timezone', timezone);
  return `${CARD_URL}?${query.toString()}`;
}

/** Fetch the card's JSON; every failure becomes a Problem the card can show. */
export async function loadCard(fetchCard: CardFetch, url: string): Promise<CardResult> {
  let response: Response;
  try {
    // hubspot.fetch signs the request (X-HubSpot-Signature-v3), which the endpoint verifies.
    response = await fetchCard(url, { method: 'GET', timeout: FETCH_TIMEOUT_MS });
  } catch (err) {
    return problem('Paydeck could not be reached', describe(err), true);
  }
  const body = await readJson(response);
  if (response.ok) {
    return isCardData(body)
      ? { kind: 'ok', data: body }
      : problem('Paydeck sent an answer the card cannot read', `HTTP ${response.status}`, true);
  }
  return { kind: 'error', problem: problemFor(response.status, errorText(body)) };
}

function problemFor(status: number, detail: string | null): Problem {
  if (status === 401) {
    return {
      title: 'Paydeck could not verify this request',
      message: `${detail ?? 'The request signature was refused.'} Reload the record; if it keeps happening, ask your admin to reinstall Paydeck.`,
      retry: true,
    };
  }
  if (status === 404) {
    return {
      title: 'Paydeck is not installed',
      message: `${detail ?? 'This HubSpot account has no Paydeck installation.'} An admin can install it from the HubSpot marketplace.`,
      retry: false,
    };
  }
  return { title: `Paydeck answered ${status}`, message: detail ?? 'Try again in a minute.', retry: true };
}

function problem(title: string, message: string, retry: boolean): CardResult {
  return { kind: 'error', problem: { title, message, retry } };
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function errorText(body: unknown): string | null {
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const { error } = body as { error: unknown };
    return typeof error === 'string' && error ? error : null;
  }
  return null;
}

function isCardData(body: unknown): body is CardData {
  return typeof body === 'object' && body !== null && typeof (body as CardData).open_url === 'string';
}

function describe(err: unknown): string {
  return err instanceof Error && err.message ? err.message : 'The request failed or timed out.';
}

/** The amount as Paydeck formatted it for this viewer (`text`, "AUD 3,036.00"); else exactly
 * as sent ("AUD 330.00": an older backend). No float arithmetic on money. */
export function money(amount: string | null | undefined, currency: string | null | undefined,
  text?: string | null): string {
  if (text) return text;
  if (amount === null || amount === undefined) return '-';
  return currency ? `${currency} ${amount}` : amount;
}

/** Fail closed: only an explicit `may_act: true` offers actions (an older backend that does not
 * send it gets the read-only card; the server refuses unpermitted actions either way). */
export function mayAct(data: CardData): boolean {
  return data.may_act === true;
}

/** The sentence to show instead of amounts, or null when this viewer may see them. */
export function amountsHidden(data: CardData): string | null {
  return typeof data.amounts_hidden === 'string' && data.amounts_hidden ? data.amounts_hidden : null;
}

export type TagVariant = 'danger' | 'warning' | 'info' | 'success' | 'default';

/** StatusTag colour for xero/status.py's deal statuses. */
export function statusVariant(dealStatus: string | null | undefined): TagVariant {
  switch (dealStatus) {
    case 'paid':
      return 'success';
    case 'overdue':
      return 'danger';
    case 'partially_paid':
      return 'warning';
    case 'awaiting_payment':
    case 'awaiting_approval':
    case 'draft':
      return 'info';
    default:
      return 'default';
  }
}
