"""The per-tenant lifecycle, date selection and allocation dispatch (DESIGN §3, §4)."""
