"""opencohort: run a precision-medicine research cohort from enrolment to analysis."""

__version__ = "0.1.0"
