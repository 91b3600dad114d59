"""Runs of the whole pipeline: one cycle (cron), the daemon's schedule, and the run lock that
keeps them apart.
"""
