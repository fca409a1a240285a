"""The PaaS/SaaS catalog: templates (shipped and operators'), resolution of a plan with
parameters (issue #16)."""
