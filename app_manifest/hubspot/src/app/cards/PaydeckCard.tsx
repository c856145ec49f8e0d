// The app card's entrypoint (deal-card-hsmeta.json, company-card-hsmeta.json): HubSpot calls
// the extend callback with the record sidebar's context and actions.
import { hubspot } from '@hubspot/ui-extensions';
import { PaydeckCard } from './Card.tsx';
import type { CardFetch } from './card-data.ts';

const fetchCard: CardFetch = (url, options) => hubspot.fetch(url, options);

hubspot.extend<'crm.record.sidebar'>(({ context, actions }) => (
  <PaydeckCard context={context} openIframeModal={actions.openIframeModal} fetchCard={fetchCard} />
));
