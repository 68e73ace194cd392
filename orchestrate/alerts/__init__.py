"""Alert-triggered failover from Alertmanager webhooks.

The payload's models, the rules that map alerts to groups, the intake that decides what each notification starts
or joins, and the HTTP server (``orchestrate serve``) in front of it.
"""
