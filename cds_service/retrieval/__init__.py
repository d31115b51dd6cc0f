"""Record retrieval: how one hook call obtains the patient's record.

``prefetch`` interprets what the EHR sent, key by key (pure); ``fhir_server_guard`` checks the
``fhirServer`` URL before any request is made; ``fhir_client`` reads and searches it within the call's
deadline; ``record_retrieval`` puts them together: prefetch first, fallback queries for the rest, one
``RetrievalOutcome`` per resource type.
"""
