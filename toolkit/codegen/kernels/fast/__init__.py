"""The fast kernel set: portable C99 speed-ups with the reference arithmetic (bit-exact)."""
