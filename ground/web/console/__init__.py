"""The coordinator's console, under /fleet behind the same login as the dashboard: the
tournée by week and by month, its changes (`changes`, one way in for forms and the JSON
API), the `api` in /openapi.json and its `models`."""
