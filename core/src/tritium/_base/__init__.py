"""The data model every layer shares: errors, datatypes, requests and tensors, events, component specs,
server options, statistics. Imports nothing else of the kernel."""
