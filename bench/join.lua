-- wrk: every request is a new person joining the line (no visitor id).
wrk.method = "POST"
