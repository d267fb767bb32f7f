"""Speaking the integrators' languages: the national platform's transactions (国家医疗保障信息平台) in and
out, and FHIR R4 out. Pure mapping: no database, no HTTP; api/routes_nhsa.py and api/routes_fhir.py call it."""
