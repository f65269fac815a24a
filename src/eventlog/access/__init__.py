"""Who may use the HTTP API, and how often.

api_keys     keys: created once, shown once, stored as a hash; each with scopes and environments
rate_limits  requests per minute per key and scope, counted in Redis
"""
