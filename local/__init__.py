"""The local system: what `make sample-model`, `make demo`, `make publish` / `deploy` /
`rollback` / `status` and `make down` build and run on this machine (`python -m local`)."""
