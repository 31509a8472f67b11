/* An opaque stand-in (see ../README): only the names of the types. */
typedef unsigned int VdpDevice;
typedef unsigned int VdpVideoSurface;
typedef unsigned int VdpOutputSurface;
typedef int VdpGetProcAddress(VdpDevice device, unsigned int function_id, void **function_pointer);
