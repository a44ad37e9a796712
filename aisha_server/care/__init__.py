"""C.A.R.E. v1 (guide chapter 13): kill switch, state engine, escalation detection, policy gate
and audit.  Pure decision code lives here; the transactional parts are in services/care*.py."""
