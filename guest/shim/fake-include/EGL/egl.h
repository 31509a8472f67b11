/* An opaque stand-in (see ../README): only the names of the types. */
typedef void *EGLImageKHR;
typedef void *EGLStreamKHR;
typedef void *EGLSyncKHR;
typedef void *EGLDisplay;
typedef int EGLint;
typedef unsigned int EGLenum;
