"""Da Vinci DTR payer side: documentation templates generated from the policy files, prefilled from the
coverage decision the order-sign hook already made. See docs/dtr.md."""
