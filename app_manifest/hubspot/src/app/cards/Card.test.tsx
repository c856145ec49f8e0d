// Rendering tests with HubSpot's own test renderer (@hubspot/ui-extensions/testing, run with
// Vitest as HubSpot's testing docs recommend). The card's fetch is a fake returning real
// `Response` objects shaped like app/views/cards.py's answers (tests/test_cards.py pins those).
import { describe, expect, it, vi } from 'vitest';
import { Alert, Button, DescriptionListItem, Flex, Link, LoadingSpinner, StatusTag, Text, hubspot } from '@hubspot/ui-extensions';
import { RenderedNodeType, createRenderer, type RenderedNode } from '@hubspot/ui-extensions/testing';
import { MAY_NOT_ACT, PaydeckCard } from './Card.tsx';
import { CARD_URL, FETCH_TIMEOUT_MS, type CardData, type CardFetch, type WholeInvoice } from './card-data.ts';

const OPEN_URL = 'https://paydeck.example.com/ui/deal/123?t=deal-token';
const REVIEW_URL = 'https://paydeck.example.com/ui/review/7?t=review-token';
const SETTINGS_URL = 'https://paydeck.example.com/ui/settings/7?t=settings-token';

const notInvoiced: CardData = {
  open_url: OPEN_URL,
  review_url: REVIEW_URL,
  may_act: true,
  invoiced: false,
  status: 'Not invoiced',
  open_review_items: 0,
  review_items: [],
};

const invoiced: CardData = {
  ...notInvoiced,
  invoiced: true,
  status: 'Overdue',
  deal_status: 'overdue',
  invoice_number: 'INV-0042',
  currency: 'AUD',
  total: '330.00',
  amount_due: '110.00',
  amount_paid: '220.00',
  due_date: '2026-11-30',
  invoice_url: 'https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID=abc',
};

function answer(status: number, body: unknown): CardFetch {
  return vi.fn<CardFetch>(async () => new Response(JSON.stringify(body), { status }));
}

function setup(fetchCard: CardFetch, objectTypeId = '0-3') {
  const renderer = createRenderer('crm.record.sidebar');
  const { mocks } = renderer;
  mocks.context.crm.objectTypeId = objectTypeId;
  mocks.context.crm.objectId = 123;
  mocks.context.user.locale = 'de-de';
  mocks.context.portal.timezone = 'Europe/Berlin';
  renderer.render(
    <PaydeckCard context={mocks.context} openIframeModal={mocks.actions.openIframeModal} fetchCard={fetchCard} />,
  );
  return renderer;
}

async function loaded(renderer: ReturnType<typeof setup>) {
  await renderer.waitFor(() => expect(renderer.maybeFind(LoadingSpinner)).toBeNull());
}

function button(renderer: ReturnType<typeof setup>, label: string) {
  return renderer.find(Button, (node) => node.text === label);
}

/** Every text the card renders, anywhere in the tree (a node's own `text` is only its direct text). */
function allText(node: RenderedNode): string {
  if (node.nodeType === RenderedNodeType.Text) return node.text;
  return node.childNodes.map(allText).join(' | ');
}

/** The pages the card opened (each button fetches the card again first, so this waits). */
async function opened(renderer: ReturnType<typeof setup>) {
  // The mock's `calls` is a new array after each call: read it afresh.
  const calls = () => renderer.mocks.actions.openIframeModal.calls;
  await vi.waitFor(() => expect(calls().length).toBeGreaterThan(0));
  return calls().map((call) => call[0]);
}

function buttonLabels(renderer: ReturnType<typeof setup>) {
  return renderer.findAll(Button).map((node) => node.text);
}

// What app/card_data/deal.py `without_money` sends a viewer who may not see money: the summary
// less total / amount_due / amount_paid / currency / invoice_url and review item details, plus
// app/access/rules.py AMOUNTS_HIDDEN (tests/test_record_access.py pins the backend side).
const AMOUNTS_HIDDEN = "Amounts hidden by your admin's settings";
const { total: _t, amount_due: _d, amount_paid: _p, currency: _c, invoice_url: _u, ...invoicedNoMoney } = invoiced;
const hiddenInvoiced: CardData = { ...invoicedNoMoney, amounts_hidden: AMOUNTS_HIDDEN };

describe('PaydeckCard', () => {
  it('asks the card endpoint for this record, signed by hubspot.fetch, with a timeout', async () => {
    const fetchCard = answer(200, notInvoiced);
    const renderer = setup(fetchCard);
    expect(renderer.find(LoadingSpinner).props.label).toBe('Loading Paydeck');
    await loaded(renderer);
    expect(fetchCard).toHaveBeenCalledTimes(1);
    // The user's locale and the account's timezone ride along, for Paydeck's formatting.
    expect(fetchCard).toHaveBeenCalledWith(`${CARD_URL}?objectType=deals&objectId=123&locale=de-de&timezone=Europe%2FBerlin`, {
      method: 'GET',
      timeout: FETCH_TIMEOUT_MS,
    });
    expect(FETCH_TIMEOUT_MS).toBeLessThanOrEqual(15_000); // hubspot.fetch's own ceiling
  });

  it('shows an invoiced deal: number, status, amounts, due date and the Xero link', async () => {
    const renderer = setup(answer(200, invoiced));
    await loaded(renderer);
    expect(renderer.find(Text, (n) => n.text === 'Invoice INV-0042')).toBeTruthy();
    const tag = renderer.findByTestId(StatusTag, 'invoice-status');
    expect([tag.text, tag.props.variant]).toEqual(['Overdue', 'danger']);
    const items = renderer.findAll(DescriptionListItem).map((n) => [n.props.label, n.text]);
    expect(items).toEqual([
      ['Total', 'AUD 330.00'],
      ['Amount due', 'AUD 110.00'],
      ['Due date', '2026-11-30'],
    ]);
    expect(renderer.find(Link).props.href).toEqual({ url: invoiced.invoice_url, external: true });
    expect(renderer.maybeFind(Alert)).toBeNull(); // no review items, no connection problems
    button(renderer, 'Open in Paydeck').trigger('onClick');
    expect(await opened(renderer)).toEqual([{ uri: OPEN_URL, width: 900, height: 700, title: 'Paydeck' }]);
  });

  it('shows the amounts and due date as Paydeck formatted them for this viewer', async () => {
    const renderer = setup(answer(200, {
      ...invoiced, total: '3036.00', amount_due: '3036.00',
      total_text: '3.036,00\u00a0AUD', amount_due_text: '3.036,00\u00a0AUD', due_date_text: '30.11.2026',
    }));
    await loaded(renderer);
    const items = renderer.findAll(DescriptionListItem).map((n) => [n.props.label, n.text]);
    expect(items).toEqual([
      ['Total', '3.036,00\u00a0AUD'],
      ['Amount due', '3.036,00\u00a0AUD'],
      ['Due date', '30.11.2026'],
    ]);
  });

  it('shows "Not invoiced" and opens the preview page', async () => {
    const renderer = setup(answer(200, notInvoiced));
    await loaded(renderer);
    expect(renderer.find(Text, (n) => n.text === 'Not invoiced')).toBeTruthy();
    expect(renderer.maybeFind(DescriptionListItem)).toBeNull();
    const preview = button(renderer, 'Preview and push');
    expect(preview.props.variant).toBe('primary');
    preview.trigger('onClick');
    expect((await opened(renderer))[0]?.uri).toBe(OPEN_URL);
  });

  it('shows the hidden-amounts sentence instead of amounts, and no Xero link', async () => {
    const renderer = setup(answer(200, hiddenInvoiced));
    await loaded(renderer);
    expect(renderer.find(Text, (n) => n.text === 'Invoice INV-0042')).toBeTruthy();
    expect(renderer.findByTestId(StatusTag, 'invoice-status').text).toBe('Overdue');
    expect(renderer.findByTestId(Text, 'amounts-hidden').text).toBe(AMOUNTS_HIDDEN);
    // The due date is not money (it stays in the JSON); no Total / Amount due rows, no "-".
    const items = renderer.findAll(DescriptionListItem).map((n) => [n.props.label, n.text]);
    expect(items).toEqual([['Due date', '2026-11-30']]);
    expect(renderer.maybeFind(Link)).toBeNull();
    const shown = allText(renderer.getRootNode());
    expect(shown).toContain(AMOUNTS_HIDDEN); // the whole card's text, so the next line means something
    expect(shown).not.toMatch(/undefined|null|AUD|330|110|220/);
    expect(shown).not.toContain('Open in Xero');
  });

  it('shows the hidden-amounts sentence on a deal not yet invoiced', async () => {
    const renderer = setup(answer(200, { ...notInvoiced, amounts_hidden: AMOUNTS_HIDDEN }));
    await loaded(renderer);
    expect(renderer.find(Text, (n) => n.text === 'Not invoiced')).toBeTruthy();
    expect(renderer.findByTestId(Text, 'amounts-hidden').text).toBe(AMOUNTS_HIDDEN);
    expect(renderer.maybeFind(DescriptionListItem)).toBeNull();
  });

  it('shows the hidden-amounts sentence in place of review item details it was not sent', async () => {
    const renderer = setup(answer(200, {
      ...hiddenInvoiced,
      open_review_items: 1,
      review_items: [{ id: 9, reason: 'amount_mismatch', reason_label: 'Amount mismatch', created_at: '2026-12-01T10:00:00+00:00' }],
    }));
    await loaded(renderer);
    const shown = renderer.findByTestId(Flex, 'review-item-9').findAll(Text).map((n) => n.text);
    expect(shown).toEqual(['Amount mismatch', AMOUNTS_HIDDEN]);
    expect(allText(renderer.getRootNode())).not.toMatch(/undefined/);
  });

  it('without may_act offers no push, says who may push, and still opens the deal page', async () => {
    for (const data of [{ ...notInvoiced, may_act: false }, { ...invoiced, may_act: false }]) {
      const renderer = setup(answer(200, data));
      await loaded(renderer);
      expect(renderer.findByTestId(Text, 'may-not-act').text).toBe(
        "Only the deal's owner or an admin can push this deal (your admin's settings).",
      );
      expect(buttonLabels(renderer)).toEqual(['Open in Paydeck']);
      expect(allText(renderer.getRootNode())).not.toMatch(/push it|Re-push|Retry/i);
      const open = button(renderer, 'Open in Paydeck');
      expect(open.props.variant).toBe('secondary');
      open.trigger('onClick');
      expect((await opened(renderer))[0]?.uri).toBe(OPEN_URL);
    }
  });

  it('with may_act offers the push and does not say who may push', async () => {
    const renderer = setup(answer(200, notInvoiced));
    await loaded(renderer);
    expect(buttonLabels(renderer)).toEqual(['Preview and push']);
    expect(renderer.maybeFindByTestId(Text, 'may-not-act')).toBeNull();
    expect(renderer.maybeFind(Text, (n) => n.text === MAY_NOT_ACT)).toBeNull();
  });

  it('treats a card without may_act as read-only (fail closed)', async () => {
    const { may_act: _m, ...older } = notInvoiced;
    const renderer = setup(answer(200, older));
    await loaded(renderer);
    expect(buttonLabels(renderer)).toEqual(['Open in Paydeck']);
    expect(renderer.findByTestId(Text, 'may-not-act').text).toBe(MAY_NOT_ACT);
  });

  it('lists open review items with their reasons and opens the review queue', async () => {
    const data: CardData = {
      ...notInvoiced,
      open_review_items: 3,
      review_items: [
        { id: 9, reason: 'unknown_tax', reason_label: 'Unknown tax', detail: 'VAT 20% unmapped', created_at: '2026-12-01T10:00:00+00:00' },
        { id: 8, reason: 'ambiguous_contact', reason_label: 'Ambiguous contact', detail: 'two contacts named Initech', created_at: '2026-12-01T09:00:00+00:00' },
      ],
    };
    const renderer = setup(answer(200, data));
    await loaded(renderer);
    const alert = renderer.findByTestId(Alert, 'review-items');
    expect([alert.props.title, alert.props.variant]).toEqual(['3 items need review', 'warning']);
    const shown = (id: number) => renderer.findByTestId(Flex, `review-item-${id}`).findAll(Text).map((n) => n.text);
    expect(shown(9)).toEqual(['Unknown tax', 'VAT 20% unmapped']);
    expect(shown(8)).toEqual(['Ambiguous contact', 'two contacts named Initech']);
    expect(alert.find(Text, (n) => n.text === 'and 1 more')).toBeTruthy();
    renderer.findByTestId(Button, 'open-review-queue').trigger('onClick');
    expect(await opened(renderer)).toEqual([
      { uri: REVIEW_URL, width: 960, height: 800, title: 'Paydeck review queue' },
    ]);
  });

  it('says the HubSpot and Xero connections are fine when they are', async () => {
    const renderer = setup(answer(200, {
      ...invoiced,
      connection: { crm: { state: 'ok', message: null }, xero: { state: 'connected', message: null } },
    }));
    await loaded(renderer);
    expect(renderer.findByTestId(StatusTag, 'xero-ok').text).toBe('Xero connected');
    expect(renderer.findByTestId(StatusTag, 'crm-ok').text).toBe('HubSpot linked');
    expect(renderer.maybeFind(Alert)).toBeNull();
  });

  it.each([
    ['not_connected', 'Xero is not connected: no invoices are made', 'warning'],
    ['failing', 'Xero is not answering right now', 'warning'],
    ['reconnect_needed', 'Xero needs reconnecting: an admin must reconnect it', 'danger'],
  ] as const)('shows a Xero connection that is %s', async (state, title, variant) => {
    const renderer = setup(answer(200, {
      ...notInvoiced,
      connection: { crm: { state: 'ok', message: null }, xero: { state, message: 'Xero said: token expired' } },
    }));
    await loaded(renderer);
    const alert = renderer.findByTestId(Alert, 'xero-connection');
    expect([alert.props.title, alert.props.variant, alert.text]).toEqual([title, variant, 'Xero said: token expired']);
    expect(renderer.maybeFindByTestId(Alert, 'crm-connection')).toBeNull();
    expect(renderer.maybeFindByTestId(StatusTag, 'xero-ok')).toBeNull();
  });

  it.each([
    ['failing', 'Paydeck cannot reach HubSpot right now', 'warning'],
    ['reconnect_needed', 'Paydeck lost access to HubSpot: an admin must reinstall it', 'danger'],
  ] as const)('shows a HubSpot connection that is %s', async (state, title, variant) => {
    const renderer = setup(answer(200, {
      ...notInvoiced,
      connection: { crm: { state, message: null }, xero: { state: 'connected', message: null } },
    }));
    await loaded(renderer);
    const alert = renderer.findByTestId(Alert, 'crm-connection');
    expect([alert.props.title, alert.props.variant]).toEqual([title, variant]);
  });

  it('offers the settings page only when the endpoint sends settings_url (the installing admin)', async () => {
    const admin = setup(answer(200, { ...invoiced, settings_url: SETTINGS_URL }));
    await loaded(admin);
    button(admin, 'Paydeck settings').trigger('onClick');
    expect((await opened(admin))[0]).toEqual({
      uri: SETTINGS_URL, width: 960, height: 800, title: 'Paydeck settings',
    });
    const rep = setup(answer(200, invoiced));
    await loaded(rep);
    expect(rep.maybeFind(Button, (n) => n.text === 'Paydeck settings')).toBeNull();
  });

  it('shows a company card without invoice facts', async () => {
    const fetchCard = answer(200, { open_url: 'https://paydeck.example.com/ui/company/5?t=x', review_url: REVIEW_URL });
    const renderer = setup(fetchCard, '0-2');
    await loaded(renderer);
    expect(vi.mocked(fetchCard).mock.calls[0]?.[0]).toBe(`${CARD_URL}?objectType=companies&objectId=123&locale=de-de&timezone=Europe%2FBerlin`);
    expect(renderer.maybeFind(Text, (n) => n.text === 'Not invoiced')).toBeNull();
    expect(button(renderer, 'Open in Paydeck')).toBeTruthy();
  });

  it('opens the page a fresh fetch names, not the URL it was first given (tokens expire)', async () => {
    const fresh = 'https://paydeck.example.com/ui/deal/123?t=fresh-token';
    const fetchCard = vi.fn<CardFetch>()
      .mockResolvedValueOnce(new Response(JSON.stringify(notInvoiced), { status: 200 }))
      .mockResolvedValue(new Response(JSON.stringify({ ...notInvoiced, open_url: fresh }), { status: 200 }));
    const renderer = setup(fetchCard);
    await loaded(renderer);
    button(renderer, 'Preview and push').trigger('onClick');
    expect(await opened(renderer)).toEqual([{ uri: fresh, width: 900, height: 700, title: 'Paydeck' }]);
    expect(fetchCard).toHaveBeenCalledTimes(2);
    expect(fetchCard.mock.calls[1]?.[0]).toBe(fetchCard.mock.calls[0]?.[0]);
  });

  it('reloads the card when the modal closes, so it shows what was done there', async () => {
    const fetchCard = vi.fn<CardFetch>()
      .mockResolvedValueOnce(new Response(JSON.stringify(notInvoiced), { status: 200 }))
      .mockResolvedValueOnce(new Response(JSON.stringify(notInvoiced), { status: 200 }))
      .mockResolvedValue(new Response(JSON.stringify(invoiced), { status: 200 }));
    const renderer = setup(fetchCard);
    await loaded(renderer);
    button(renderer, 'Preview and push').trigger('onClick');
    await opened(renderer);
    const onClose = renderer.mocks.actions.openIframeModal.calls[0]?.[1];
    expect(onClose).toBeTypeOf('function');
    onClose?.();
    await renderer.waitFor(() => expect(renderer.maybeFind(Text, (n) => n.text === 'Invoice INV-0042')).toBeTruthy());
  });

  it('when the fresh fetch fails, shows why instead of opening a dead page', async () => {
    const fetchCard = vi.fn<CardFetch>()
      .mockResolvedValueOnce(new Response(JSON.stringify(notInvoiced), { status: 200 }))
      .mockRejectedValue(new Error('Request timed out'));
    const renderer = setup(fetchCard);
    await loaded(renderer);
    button(renderer, 'Preview and push').trigger('onClick');
    await renderer.waitFor(() => expect(renderer.find(Alert).props.title).toBe('Paydeck could not be reached'));
    expect(renderer.mocks.actions.openIframeModal.calls).toEqual([]);
  });

  it('shows an installation-wide reconnect item as a banner on every card, with the review queue', async () => {
    const lost = {
      id: 4, reason: 'reconnect_needed', title: "Xero needs reconnecting: an admin reconnects it in Paydeck's settings",
      detail: 'invalid_grant', fixed: false, created_at: '2026-12-01T10:00:00+00:00',
    };
    for (const [objectTypeId, data] of [
      ['0-3', { ...invoiced, installation_alerts: [lost] }],
      ['0-2', { open_url: 'https://paydeck.example.com/ui/company/5?t=x', review_url: REVIEW_URL, installation_alerts: [lost] }],
    ] as const) {
      const renderer = setup(answer(200, data), objectTypeId);
      await loaded(renderer);
      const alert = renderer.findByTestId(Alert, 'installation-alert-4');
      expect([alert.props.title, alert.props.variant, alert.text]).toEqual([
        lost.title, 'danger', 'invalid_grant. Invoices wait until then; nothing is lost.',
      ]);
      renderer.findByTestId(Button, 'alerts-open-review-queue').trigger('onClick');
      expect((await opened(renderer))[0]?.uri).toBe(REVIEW_URL);
    }
    const fixed = setup(answer(200, { ...notInvoiced, installation_alerts: [{ ...lost, fixed: true, title: 'Xero needed reconnecting and was reconnected since' }] }));
    await loaded(fixed);
    const alert = fixed.findByTestId(Alert, 'installation-alert-4');
    expect([alert.props.variant, alert.text]).toEqual(['info', 'invalid_grant. It works again now: close this item in the review queue.']);
    const none = setup(answer(200, notInvoiced));
    await loaded(none);
    expect(none.maybeFindByTestId(Button, 'alerts-open-review-queue')).toBeNull();
  });

  it('shows 404 as "not installed", with no retry', async () => {
    const renderer = setup(answer(404, { error: 'Paydeck is not installed in this HubSpot account' }));
    await loaded(renderer);
    const alert = renderer.find(Alert);
    expect([alert.props.title, alert.props.variant]).toEqual(['Paydeck is not installed', 'error']);
    expect(alert.text).toContain('Paydeck is not installed in this HubSpot account');
    expect(renderer.maybeFind(Button)).toBeNull();
  });

  it('shows 401 as a refused signature, and retries on request', async () => {
    const fetchCard = vi.fn<CardFetch>()
      .mockResolvedValueOnce(new Response(JSON.stringify({ error: 'signature mismatch' }), { status: 401 }))
      .mockResolvedValueOnce(new Response(JSON.stringify(notInvoiced), { status: 200 }));
    const renderer = setup(fetchCard);
    await loaded(renderer);
    const alert = renderer.find(Alert);
    expect(alert.props.title).toBe('Paydeck could not verify this request');
    expect(alert.text).toContain('signature mismatch');
    button(renderer, 'Try again').trigger('onClick');
    await renderer.waitFor(() => expect(renderer.find(Text, (n) => n.text === 'Not invoiced')).toBeTruthy());
    expect(fetchCard).toHaveBeenCalledTimes(2);
  });

  it('shows a failed fetch (network or timeout) and a 500', async () => {
    const down = setup(vi.fn<CardFetch>().mockRejectedValue(new Error('Request timed out')));
    await loaded(down);
    expect([down.find(Alert).props.title, down.find(Alert).text]).toEqual(['Paydeck could not be reached', 'Request timed out']);
    expect(button(down, 'Try again')).toBeTruthy();

    const broken = setup(answer(500, { error: 'Internal Server Error' }));
    await loaded(broken);
    expect([broken.find(Alert).props.title, broken.find(Alert).text]).toEqual(['Paydeck answered 500', 'Internal Server Error']);
  });

  it('treats a 200 that is not the card JSON as an error, not a blank card', async () => {
    const fetchCard = vi.fn<CardFetch>(async () => new Response('<html>proxy login</html>', { status: 200 }));
    const renderer = setup(fetchCard);
    await loaded(renderer);
    expect(renderer.find(Alert).props.title).toBe('Paydeck sent an answer the card cannot read');
  });
});

// The whole invoice as app/invoice_view.py `card_json` sends it (tests/test_whole_invoice.py pins
// the backend): 2 x 1,200.00 + 400.00 less 10% = 2,760.00, GST 10% on top = 3,036.00.
const NB = '\u00a0';
const whole: WholeInvoice = {
  line_amount_types: 'Exclusive',
  lines: [
    { description: 'Consulting', quantity: '2.0000', quantity_text: '2', unit_amount: '1200.0000',
      unit_amount_text: `AUD${NB}1,200.00`, discount_rate: null, discount_text: '', account: '200 · Sales',
      tax_type: 'OUTPUT', tax: 'GST on Income (10%)', tax_amount: '240.00', tax_amount_text: `AUD${NB}240.00`,
      line_amount: '2400.00', line_amount_text: `AUD${NB}2,400.00` },
    { description: 'Setup', quantity: '1.0000', quantity_text: '1', unit_amount: '400.0000',
      unit_amount_text: `AUD${NB}400.00`, discount_rate: '10.00', discount_text: '10%', account: '200 · Sales',
      tax_type: 'OUTPUT', tax: 'GST on Income (10%)', tax_amount: '36.00', tax_amount_text: `AUD${NB}36.00`,
      line_amount: '360.00', line_amount_text: `AUD${NB}360.00` },
  ],
  subtotal: '2760.00', subtotal_text: `AUD${NB}2,760.00`,
  total_tax: '276.00', total_tax_text: `AUD${NB}276.00`,
  total: '3036.00', total_text: `AUD${NB}3,036.00`,
  amount_paid: '1000.00', amount_paid_text: `AUD${NB}1,000.00`,
  amount_due: '2000.00', amount_due_text: `AUD${NB}2,000.00`,
  paid_on: null, paid_on_text: null,
  payments: [{ date: '2026-11-20', date_text: 'Nov 20, 2026', amount: '1000.00', amount_text: `AUD${NB}1,000.00`, reference: 'EFT 4471' }],
  allocations: [{ kind: 'credit_note', label: 'Credit note', date: '2026-11-21', date_text: 'Nov 21, 2026', amount: '36.00', amount_text: `AUD${NB}36.00` }],
  ended: null,
  due_text: `Due AUD${NB}2,000.00`,
  explanation: `The line amounts exclude tax: Xero added AUD${NB}276.00 of tax to the AUD${NB}2,760.00 subtotal.`,
  emailed: 'Emailed to ap@initech.example on Dec 2, 2026, 2:00 PM UTC by Paydeck',
  customer_url: 'https://in.xero.com/abc',
  synced_text: 'Dec 2, 2026, 2:05 PM UTC',
};
const PDF_URL = 'https://paydeck.example.com/ui/deal/123/invoice.pdf?t=deal-token';
const partPaid: CardData = { ...invoiced, status: 'Partially paid', deal_status: 'partially_paid', invoice: whole, pdf_url: PDF_URL };

describe('the whole invoice on the card', () => {
  it('shows the lines, the totals and how they add up, payments, credit and the links', async () => {
    const renderer = setup(answer(200, partPaid));
    await loaded(renderer);
    const text = allText(renderer.find(Flex, (n) => n.props.testId === 'whole-invoice'));
    for (const shown of ['Consulting', 'Setup', ' (less 10%)', 'GST on Income (10%)', `AUD${NB}1,200.00`,
      `AUD${NB}2,760.00`, `AUD${NB}276.00`, `AUD${NB}3,036.00`, `Due AUD${NB}2,000.00`, 'Xero added',
      'EFT 4471', 'Nov 20, 2026', 'Credit note', `AUD${NB}36.00`, 'Emailed to ap@initech.example',
      'Last synced with Xero']) {
      expect(text).toContain(shown);
    }
    expect(renderer.find(Link, (n) => n.props.testId === 'invoice-pdf').props.href).toEqual({ url: PDF_URL, external: true });
    expect(renderer.find(Link, (n) => n.props.testId === 'customer-invoice').props.href).toEqual({ url: whole.customer_url, external: true });
  });

  it('says "Voided" for a voided invoice, never what was due', async () => {
    const voided: CardData = { ...partPaid, status: 'Voided', deal_status: 'voided',
      invoice: { ...whole, ended: 'Voided', due_text: 'Voided', payments: [], allocations: [] } };
    const renderer = setup(answer(200, voided));
    await loaded(renderer);
    expect(renderer.find(Text, (n) => n.props.testId === 'invoice-due').text).toBe('Voided');
    expect(allText(renderer.find(Flex, (n) => n.props.testId === 'whole-invoice'))).not.toContain('Due');
  });

  it('shows no lines and no PDF link to a viewer the amounts are hidden from', async () => {
    const renderer = setup(answer(200, hiddenInvoiced));
    await loaded(renderer);
    expect(renderer.maybeFind(Flex, (n) => n.props.testId === 'whole-invoice')).toBeNull();
    expect(renderer.maybeFind(Link, (n) => n.props.testId === 'invoice-pdf')).toBeNull();
  });
});

describe('the entrypoint (PaydeckCard.tsx)', () => {
  it('registers the card for the record sidebar with hubspot.extend and wires its actions', async () => {
    const extend = vi.spyOn(hubspot, 'extend');
    await import('./PaydeckCard.tsx');
    expect(extend).toHaveBeenCalledTimes(1);
    const callback = extend.mock.calls[0]?.[0];
    const renderer = createRenderer('crm.record.sidebar');
    renderer.mocks.context.crm.objectTypeId = '0-3';
    // The real hubspot.fetch needs HubSpot's worker; here it must fail into the error view.
    const { context, actions, runServerlessFunction } = renderer.mocks;
    renderer.render(callback?.({ context, actions, runServerlessFunction }));
    await renderer.waitFor(() => expect(renderer.maybeFind(LoadingSpinner)).toBeNull());
    expect(renderer.find(Alert).props.title).toBe('Paydeck could not be reached');
  });
});
