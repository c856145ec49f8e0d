"""The invoice as a PDF: `GET /Invoices/{InvoiceID}` with `Accept: application/pdf`.

tests/specs/xero/xero_accounting.yaml, path `/Invoices/{InvoiceID}/pdf` (operationId
getInvoiceAsPdf, `x-path: /Invoices/{InvoiceID}`: the same URL as the JSON read, chosen by
the Accept header, which is how xero-python calls it): 200, `content: application/pdf`,
"byte array pdf version of specified Invoices". An unknown id answers like the JSON read
(404). The PDF here is a small, valid one-page document naming the invoice, its contact,
total and amount due: enough for a viewer to open and a test to read.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.xero.books import TenantBooks
from sandbox.xero.wire import not_found

PDF = "application/pdf"


def or_json(json_get: Any) -> Any:
    """`json_get` (the JSON `GET /Invoices/{id}`), answering a PDF when one is asked for."""

    def handler(request: Request, books: TenantBooks, record_id: str) -> Response:
        if PDF not in request.headers.get("Accept", ""):
            return json_get(request, books, record_id)
        invoice = books.find_invoice(record_id)
        if invoice is None:
            return not_found()
        owner = books.contact_by_id.get(invoice.contact_id)
        text = [f"Tax invoice {invoice.invoice_number}", f"To: {owner.name if owner else ''}",
                f"Total {invoice.currency_code} {invoice.total}",
                f"Amount due {invoice.currency_code} {invoice.amount_due}"]
        return Response(invoice_pdf(text), status=200, content_type=PDF)

    return handler


def invoice_pdf(lines: list[str]) -> bytes:
    """A one-page PDF 1.4 with `lines` in Helvetica (ASCII; others shown as '?')."""
    def escape(s: str) -> str:
        s = s.encode("ascii", "replace").decode()
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    stream = "BT /F1 14 Tf 72 770 Td 18 TL " + " ".join(f"({escape(l)}) '" for l in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out
