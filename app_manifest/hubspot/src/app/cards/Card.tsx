// The Paydeck card: the deal's invoice (or "Not invoiced"), its open review items, the state of
// Paydeck's CRM and Xero connections, and buttons that open Paydeck's pages in HubSpot's modal.
// What the viewer may see and do is decided by the server (app/access/): the card shows
// `amounts_hidden` in place of amounts, and offers no push when `may_act` is not true.
import { useEffect, useState } from 'react';
import {
  Alert,
  Button,
  DescriptionList,
  DescriptionListItem,
  Flex,
  Link,
  LoadingSpinner,
  StatusTag,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableHeader,
  TableRow,
  Text,
} from '@hubspot/ui-extensions';
import type { CrmContext, ExtensionPointApiActions } from '@hubspot/ui-extensions';
import {
  amountsHidden,
  cardUrl,
  loadCard,
  mayAct,
  money,
  objectTypeOf,
  statusVariant,
  type CardData,
  type CardFetch,
  type CardResult,
  type Connection,
  type InstallationAlert,
  type ObjectType,
  type Problem,
  type WholeInvoice,
} from './card-data.ts';

type OpenIframeModal = ExtensionPointApiActions<'crm.record.sidebar'>['openIframeModal'];

export interface PaydeckCardProps {
  context: CrmContext;
  openIframeModal: OpenIframeModal;
  fetchCard: CardFetch;
}

// Modal sizes for Paydeck's pages (openIframeModal takes pixels).
// The deal page's own wording for a viewer who may not act (app/templates/deal.html).
export const MAY_NOT_ACT = "Only the deal's owner or an admin can push this deal (your admin's settings).";

const DEAL_MODAL = { width: 900, height: 700 };
const WIDE_MODAL = { width: 960, height: 800 };

export const PaydeckCard = ({ context, openIframeModal, fetchCard }: PaydeckCardProps) => {
  const objectType = objectTypeOf(context.crm.objectTypeId);
  const url = cardUrl(objectType, context.crm.objectId, context.user?.locale, context.portal?.timezone);
  const [result, setResult] = useState<CardResult | null>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let current = true;
    loadCard(fetchCard, url).then((loaded) => {
      if (current) setResult(loaded);
    });
    return () => {
      current = false;
    };
  }, [fetchCard, url, attempt]);

  if (result === null) {
    return <LoadingSpinner label="Loading Paydeck" />;
  }
  if (result.kind === 'error') {
    const retry = () => {
      setResult(null);
      setAttempt((n) => n + 1);
    };
    return <ProblemView problem={result.problem} onRetry={retry} />;
  }
  // Page tokens live 15 minutes, and a card may sit open far longer: every button fetches the
  // card again (fresh, signed URLs) and opens the page it names now. When the modal closes the
  // card shows what changed there (a push, a retry).
  const openFresh: OpenFresh = (pick, size, title) => {
    loadCard(fetchCard, url).then((fresh) => {
      const uri = fresh.kind === 'ok' ? pick(fresh.data) : undefined;
      if (uri) {
        openIframeModal({ uri, ...size, title }, () => setAttempt((n) => n + 1));
      }
      setResult(fresh);
    });
  };
  return <CardView data={result.data} objectType={objectType} openFresh={openFresh} />;
};

type OpenFresh = (
  pick: (data: CardData) => string | undefined,
  size: { width: number; height: number },
  title: string,
) => void;

const ProblemView = ({ problem, onRetry }: { problem: Problem; onRetry: () => void }) => (
  <Flex direction="column" gap="sm">
    <Alert title={problem.title} variant="error">
      {problem.message}
    </Alert>
    {problem.retry && (
      <Button variant="secondary" onClick={onRetry}>
        Try again
      </Button>
    )}
  </Flex>
);

interface CardViewProps {
  data: CardData;
  objectType: ObjectType;
  openFresh: OpenFresh;
}

const CardView = ({ data, objectType, openFresh }: CardViewProps) => {
  const openPage = () => openFresh((d) => d.open_url, DEAL_MODAL, 'Paydeck');
  const openReview = () => openFresh((d) => d.review_url, WIDE_MODAL, 'Paydeck review queue');
  const openSettings = data.settings_url
    ? () => openFresh((d) => d.settings_url, WIDE_MODAL, 'Paydeck settings')
    : undefined;
  const alerts = data.installation_alerts ?? [];
  const deal = objectType === 'deals';
  // Only a viewer who may act is invited to push; anyone may open the deal page (read-only
  // for those who may not act: the page leaves its forms out and the server refuses them).
  const offerPush = deal && mayAct(data) && !data.invoiced;
  return (
    <Flex direction="column" gap="sm">
      {data.connection && <ConnectionView connection={data.connection} />}
      {alerts.length > 0 && <AlertsView alerts={alerts} onOpen={openReview} />}
      {deal && <InvoiceView data={data} />}
      {deal && <ReviewView data={data} onOpen={openReview} />}
      {deal && !mayAct(data) && (
        <Text variant="microcopy" testId="may-not-act">
          {MAY_NOT_ACT}
        </Text>
      )}
      <Button variant={offerPush ? 'primary' : 'secondary'} onClick={openPage}>
        {offerPush ? 'Preview and push' : 'Open in Paydeck'}
      </Button>
      {openSettings && (
        <Button variant="secondary" onClick={openSettings}>
          Paydeck settings
        </Button>
      )}
    </Flex>
  );
};

// Open reconnect_needed items of the whole installation: every card shows them until someone
// closes them in the review queue (app/card_data/alerts.py installation_alerts).
const AlertsView = ({ alerts, onOpen }: { alerts: InstallationAlert[]; onOpen: () => void }) => (
  <Flex direction="column" gap="xs">
    {alerts.map((alert) => (
      <Alert
        key={alert.id}
        title={alert.title}
        variant={alert.fixed ? 'info' : 'danger'}
        testId={`installation-alert-${alert.id}`}
      >
        {alert.fixed
          ? `${alert.detail}. It works again now: close this item in the review queue.`
          : `${alert.detail}. Invoices wait until then; nothing is lost.`}
      </Alert>
    ))}
    <Button variant="secondary" onClick={onOpen} testId="alerts-open-review-queue">
      Open review queue
    </Button>
  </Flex>
);

const AmountsHiddenView = ({ sentence }: { sentence: string }) => (
  <Text variant="microcopy" testId="amounts-hidden">
    {sentence}
  </Text>
);

const InvoiceView = ({ data }: { data: CardData }) => {
  const hidden = amountsHidden(data);
  if (!data.invoiced) {
    return (
      <Flex direction="column" gap="xs">
        <Text format={{ fontWeight: 'bold' }}>{data.status ?? 'Not invoiced'}</Text>
        {hidden && <AmountsHiddenView sentence={hidden} />}
        {mayAct(data) && (
          <Text variant="microcopy">
            Open the preview to see the invoice Paydeck would send to Xero, then push it.
          </Text>
        )}
      </Flex>
    );
  }
  return (
    <Flex direction="column" gap="xs">
      <Flex direction="row" gap="xs" align="center" wrap>
        <Text format={{ fontWeight: 'bold' }}>Invoice {data.invoice_number ?? ''}</Text>
        <StatusTag variant={statusVariant(data.deal_status)} testId="invoice-status">
          {data.status ?? ''}
        </StatusTag>
      </Flex>
      {hidden ? (
        <>
          <AmountsHiddenView sentence={hidden} />
          {data.due_date && (
            <DescriptionList direction="row">
              <DescriptionListItem label="Due date">{data.due_date_text ?? data.due_date}</DescriptionListItem>
            </DescriptionList>
          )}
        </>
      ) : (
        <>
          {data.invoice ? (
            <WholeInvoiceView invoice={data.invoice} />
          ) : (
            <DescriptionList direction="row">
              <DescriptionListItem label="Total">{money(data.total, data.currency, data.total_text)}</DescriptionListItem>
              <DescriptionListItem label="Amount due">
                {money(data.amount_due, data.currency, data.amount_due_text)}
              </DescriptionListItem>
              <DescriptionListItem label="Due date">{data.due_date_text ?? data.due_date ?? '-'}</DescriptionListItem>
            </DescriptionList>
          )}
          <Flex direction="row" gap="sm" wrap>
            {data.invoice_url && <Link href={{ url: data.invoice_url, external: true }}>Open in Xero</Link>}
            {data.pdf_url && (
              <Link href={{ url: data.pdf_url, external: true }} testId="invoice-pdf">
                PDF
              </Link>
            )}
            {data.invoice?.customer_url && (
              <Link href={{ url: data.invoice.customer_url, external: true }} testId="customer-invoice">
                Customer&apos;s online invoice
              </Link>
            )}
          </Flex>
        </>
      )}
    </Flex>
  );
};

// The whole invoice, as the deal page shows it (app/templates/_invoice.html): every amount is
// the server's formatted text (Babel, the viewer's locale); the card does no money arithmetic.
const WholeInvoiceView = ({ invoice }: { invoice: WholeInvoice }) => (
  <Flex direction="column" gap="xs" testId="whole-invoice">
    {invoice.lines.length > 0 && (
      <Table bordered={false} testId="invoice-lines">
        <TableHead>
          <TableRow>
            <TableHeader>Line</TableHeader>
            <TableHeader>Qty</TableHeader>
            <TableHeader>Unit price</TableHeader>
            <TableHeader>Amount</TableHeader>
          </TableRow>
        </TableHead>
        <TableBody>
          {invoice.lines.map((line, n) => (
            <TableRow key={n}>
              <TableCell>
                {line.description}
                {line.discount_text ? ` (less ${line.discount_text})` : ''} · {line.tax}
              </TableCell>
              <TableCell>{line.quantity_text}</TableCell>
              <TableCell>{line.unit_amount_text}</TableCell>
              <TableCell>{line.line_amount_text}</TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
    )}
    <DescriptionList direction="row">
      <DescriptionListItem label="Subtotal">{invoice.subtotal_text}</DescriptionListItem>
      <DescriptionListItem label="Tax">{invoice.total_tax_text}</DescriptionListItem>
      <DescriptionListItem label="Total">{invoice.total_text}</DescriptionListItem>
    </DescriptionList>
    <Text format={{ fontWeight: 'bold' }} testId="invoice-due">
      {invoice.due_text}
      {invoice.paid_on_text ? ` · paid in full on ${invoice.paid_on_text}` : ''}
    </Text>
    {invoice.explanation && (
      <Text variant="microcopy" testId="invoice-explanation">
        {invoice.explanation}
      </Text>
    )}
    {invoice.payments.map((p, n) => (
      <Text key={`p${n}`} variant="microcopy" testId={`payment-${n}`}>
        Paid {p.amount_text} on {p.date_text ?? '-'}
        {p.reference ? ` (${p.reference})` : ''}
      </Text>
    ))}
    {invoice.allocations.map((a, n) => (
      <Text key={`a${n}`} variant="microcopy" testId={`allocation-${n}`}>
        {a.label}: {a.amount_text} on {a.date_text ?? '-'}
      </Text>
    ))}
    {invoice.emailed && <Text variant="microcopy">{invoice.emailed}</Text>}
    {invoice.synced_text && <Text variant="microcopy">Last synced with Xero: {invoice.synced_text}</Text>}
  </Flex>
);

const ReviewView = ({ data, onOpen }: { data: CardData; onOpen: () => void }) => {
  const items = data.review_items ?? [];
  const count = data.open_review_items ?? items.length;
  if (count === 0) return null;
  const more = count - items.length;
  // Details quote amounts, so a viewer who may not see money gets the deal page's sentence.
  const hidden = amountsHidden(data);
  return (
    <Flex direction="column" gap="xs">
      <Alert
        title={count === 1 ? '1 item needs review' : `${count} items need review`}
        variant="warning"
        testId="review-items"
      >
        <Flex direction="column" gap="xs">
          {items.map((item) => (
            <Flex key={item.id} direction="column" testId={`review-item-${item.id}`}>
              <Text format={{ fontWeight: 'bold' }}>{item.reason_label}</Text>
              {(hidden ?? item.detail) && <Text variant="microcopy">{hidden ?? item.detail}</Text>}
            </Flex>
          ))}
          {more > 0 && <Text variant="microcopy">and {more} more</Text>}
        </Flex>
      </Alert>
      <Button variant="primary" onClick={onOpen} testId="open-review-queue">
        Open review queue
      </Button>
    </Flex>
  );
};

// What each connection state tells the rep (connection comes from the card endpoint).
const CRM_STATES: Record<string, { title: string; variant: 'warning' | 'danger' } | undefined> = {
  failing: { title: 'Paydeck cannot reach HubSpot right now', variant: 'warning' },
  reconnect_needed: { title: 'Paydeck lost access to HubSpot: an admin must reinstall it', variant: 'danger' },
};
const XERO_STATES: Record<string, { title: string; variant: 'warning' | 'danger' } | undefined> = {
  not_connected: { title: 'Xero is not connected: no invoices are made', variant: 'warning' },
  failing: { title: 'Xero is not answering right now', variant: 'warning' },
  reconnect_needed: { title: 'Xero needs reconnecting: an admin must reconnect it', variant: 'danger' },
};

const ConnectionView = ({ connection }: { connection: Connection }) => {
  const crm = CRM_STATES[connection.crm.state];
  const xero = XERO_STATES[connection.xero.state];
  if (!crm && !xero) {
    return (
      <Flex direction="row" gap="xs" wrap>
        <StatusTag variant="success" testId="crm-ok">
          HubSpot linked
        </StatusTag>
        <StatusTag variant="success" testId="xero-ok">
          Xero connected
        </StatusTag>
      </Flex>
    );
  }
  return (
    <Flex direction="column" gap="xs">
      {crm && (
        <Alert title={crm.title} variant={crm.variant} testId="crm-connection">
          {connection.crm.message ?? ''}
        </Alert>
      )}
      {xero && (
        <Alert title={xero.title} variant={xero.variant} testId="xero-connection">
          {connection.xero.message ?? ''}
        </Alert>
      )}
    </Flex>
  );
};
