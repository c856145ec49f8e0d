import React, { useEffect, useState } from "react";
import {
  Alert,
  Button,
  DescriptionList,
  DescriptionListItem,
  Flex,
  LoadingSpinner,
  Text,
  hubspot,
} from "@hubspot/ui-extensions";

// Must stay under permittedUrls.fetch in app-hsmeta.json. The deploy replaces the placeholder
// host with PUBLIC_URL (app_manifest/README.md).
const CARD_URL = "https://paydeck.example.com/hubspot/card";

// HubSpot's object type ids -> the objectType Paydeck's card endpoint takes.
const OBJECT_TYPES = { "0-3": "deals", "0-2": "companies" };

hubspot.extend(({ context, actions }) => (
  <PaydeckCard context={context} openIframeModal={actions.openIframeModal} />
));

const PaydeckCard = ({ context, openIframeModal }) => {
  const objectType = OBJECT_TYPES[context.crm.objectTypeId] || "deals";
  const objectId = context.crm.objectId;
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    // hubspot.fetch signs the request (X-HubSpot-Signature-v3), which the endpoint verifies.
    hubspot.fetch(`${CARD_URL}?objectType=${objectType}&objectId=${objectId}`)
      .then(async (response) => {
        const body = await response.json().catch(() => ({}));
        if (!response.ok) {
          throw new Error(body.error || `Paydeck answered ${response.status}`);
        }
        setData(body);
      })
      .catch((err) => setError(err.message || "Paydeck could not be reached"));
  }, [objectType, objectId]);

  if (error) {
    return (
      <Alert title="Paydeck" variant="error">
        {error}
      </Alert>
    );
  }
  if (!data) {
    return <LoadingSpinner label="Loading invoice" />;
  }

  const open = () =>
    openIframeModal({ uri: data.open_url, height: 700, width: 900, title: "Paydeck" });
  // Only the installing admin's card gets a settings_url (the endpoint decides).
  const openSettings = () =>
    openIframeModal({ uri: data.settings_url, height: 800, width: 960, title: "Paydeck settings" });

  return (
    <Flex direction="column" gap="small">
      {objectType === "deals" && data.invoice_number && (
        <DescriptionList direction="row">
          <DescriptionListItem label="Status">{data.status}</DescriptionListItem>
          <DescriptionListItem label="Invoice">{data.invoice_number}</DescriptionListItem>
          <DescriptionListItem label="Amount due">
            {[data.currency, data.amount_due].filter(Boolean).join(" ")}
          </DescriptionListItem>
          <DescriptionListItem label="Due date">{data.due_date || "-"}</DescriptionListItem>
        </DescriptionList>
      )}
      {objectType === "deals" && !data.invoice_number && (
        <Text>{data.status || "Not invoiced yet"}</Text>
      )}
      <Button onClick={open} disabled={!data.open_url}>
        Open in Paydeck
      </Button>
      {data.settings_url && (
        <Button variant="secondary" onClick={openSettings}>
          Paydeck settings
        </Button>
      )}
    </Flex>
  );
};
