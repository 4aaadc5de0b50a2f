"""Data subject rights and retention: a person's data exported (Art. 15) or erased everywhere
(Art. 17), and closed tickets anonymised or deleted after their queue's retention period."""
