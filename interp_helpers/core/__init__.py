"""The layer under everything: parameter validation and seeding, one-line usage errors, and
the JavaScript bundles shared by views and exports.

May import: nothing else of interp_helpers.
"""
