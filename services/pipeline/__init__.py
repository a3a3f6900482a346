"""The stream pipeline's adapters: the micro-batch checkpoint (dead letters, archive, alerts, then
offsets), the archive writer (COPY into staging, INSERT … ON CONFLICT) and the delivery audit.
`streams/` wires them into faust agents."""
