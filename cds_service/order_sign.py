"""The order-sign use case: a validated request in, a CDS Hooks response out.

This is the only orchestration code in the service (routes parse and serialise, nothing more). The
pipeline it will run, step by step (see docs/architecture.md):

1. draft orders -> ``policies.applicability``: which policy covers each order; none in scope -> no cards;
2. record retrieval: prefetch first, then fallback FHIR queries within the deadline;
3. ``PatientRecord`` -> ``ClinicalFacts``;
4. ``policies.engine.evaluate`` per in-scope order, as of ``as_of``;
5. cards + CRD coverage-information system actions.

Until those pieces are wired in, no draft order is recognised as in scope, so every call answers
``{"cards": []}``. Nothing here evaluates, or pretends to evaluate, a policy.
"""

from __future__ import annotations

from datetime import date

from cds_service.hook_request import OrderSignRequest
from cds_service.responses import Response
from cds_service.settings import Settings


def handle_order_sign(request: OrderSignRequest, *, settings: Settings, as_of: date | None = None) -> Response:
    """Answer one order-sign call. ``as_of`` is the decision date (today when None); ``settings`` carries
    the payer name, deadlines and limits the pipeline needs."""
    return Response()
