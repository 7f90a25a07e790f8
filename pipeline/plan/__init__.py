"""Plan: the config schema and loader, the stage graph, chunk and segment plans.

Decides what a job does before any frame is decoded; imports media and stages, never
run or show.
"""
