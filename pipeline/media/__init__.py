"""Media: PyAV's nouns (probe, decode, encode, mux, colour, streams, output paths).

Imports only the ground floor (errors, frames, tempfiles), never plan, run or show.
"""
