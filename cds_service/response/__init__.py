"""The CDS Hooks response: what a decision looks like on the wire.

``responses`` holds the CDS Hooks 2.0 response objects and their JSON form; ``cards`` renders each
``PolicyDecision`` as a card; ``coverage_information`` writes the Da Vinci CRD coverage-information
system actions; ``markdown_text`` makes untrusted text inert in card text.
"""
