"""Paydeck: CRM deals to Xero invoices. `app.factory.create_app` builds everything; importing
does nothing."""
