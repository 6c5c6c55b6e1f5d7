//! A leader change in the middle of a large multipart upload.
