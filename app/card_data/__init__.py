"""What the CRM cards and pages show, database reads only (fast), in the shapes the card
JSON and the page templates take: `deal` (a deal's invoice and open review items, the card's
facts), `alerts` (installation-wide banners), `company` (a company's invoices and what it
owes, a company's or person's link sync state), `review_queue` (the review queue and the
names it shows). The activity log: app.activity_log."""
