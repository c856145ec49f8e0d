"""The admin's settings page as forms: one class per section of the page (its fields as saved
or as submitted, their checks and messages, and how they are written), what the page offers
from the CRM and Xero (`sources`), and the whole page's form (`form`). No Flask routing here:
app/views/settings.py reads the request, picks the form and renders it."""
