"""Typed values and pure rules of the factory. Imports nothing else of Fabriek."""
