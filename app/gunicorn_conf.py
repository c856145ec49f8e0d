"""gunicorn settings for Paydeck's web process (`gunicorn -c python:app.gunicorn_conf`).

The access log names the path only: query strings carry view tokens, Pipedrive's panel JWTs
and OAuth codes, and the Referer of a framed page carries them too (issue #12), so neither
is logged. Status, size and duration stay, enough to read traffic and errors."""

accesslog = "-"
# %(U)s is the path without its query string (gunicorn's "URL path without query string").
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
timeout = 30
