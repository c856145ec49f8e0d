"""The company page's Xero side: link a CRM company to a Xero contact, import the contact's
details into the company (filling only fields the CRM leaves empty: never over what a rep
typed), and suggest contacts for a company that has none. CRMs are reached only through
crm_adapters, Xero only through xero/.

`links` the company's link (read, make, remove), `search` a typed search and suggested
contacts, `details` which of the contact's details an import copies, and the import."""
