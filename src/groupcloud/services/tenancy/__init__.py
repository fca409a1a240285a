"""Who is who: companies, projects, API tokens, the access checks every capability
applies (the rules themselves are ``domain.tenancy``) and the name caches."""
