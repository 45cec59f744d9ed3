"""cpmsync: CPM Message Store sync with LIST-CHANGEDSINCE (OMA CPM MS CR, Appendix I)."""

__version__ = "0.1.0"
