-- A plain POST with an empty body (the baseline's one-row insert).
wrk.method = "POST"
