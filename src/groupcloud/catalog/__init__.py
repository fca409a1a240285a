"""The PaaS/SaaS catalog engine: service templates, their parameters and plans, and what
a plan with parameters asks of the pool (issue #16). Pure: text and values in, values out."""
