/* An opaque stand-in (see ../README): only the names of the types. */
typedef unsigned int GLenum;
typedef unsigned int GLuint;
