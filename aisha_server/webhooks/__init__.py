"""Outgoing webhooks: the signer (`signing`), the shared HTTP client (`http`), one POST and
its classification (`sender`) and the durable outbox of C.A.R.E. triggers (`delivery`)."""
