"""``python -m cds_service`` is the ``cart-cds`` command."""

from cds_service.cli import main

main(prog_name="cart-cds")
