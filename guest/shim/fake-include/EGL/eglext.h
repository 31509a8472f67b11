/* An opaque stand-in (see ../README). */
