/* rootlib.c -- a loadable module for check_roots: one global pointer in its
 * data segment, set and read through functions, so that the test can hold
 * an object only from a library it loaded with dlopen.  It does not link
 * against the collector.
 */
void *rootlib_ptr;

void rootlib_set(void *p);
void *rootlib_get(void);

void rootlib_set(void *p) { rootlib_ptr = p; }
void *rootlib_get(void) { return rootlib_ptr; }
