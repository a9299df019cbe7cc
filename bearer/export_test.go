package bearer

// Fresh exposes the RFC 7641 §3.4 rule to the external tests.
var Fresh = fresh
