"""Named policy checks. Importing this package registers every check; policy files refer to them by
name and names resolve only through ``registry.get_check``."""

from policies.checks import disease, order, patient, therapy  # noqa: F401  (registration)
from policies.checks.registry import CheckSpec, LeafResult, OrderContext, check, check_names, get_check

__all__ = ["CheckSpec", "LeafResult", "OrderContext", "check", "check_names", "get_check"]
