/* base/asan.h: BASE_ASAN is defined when the build runs under AddressSanitizer (gcc defines
 * __SANITIZE_ADDRESS__, clang has the feature). Code that recycles memory through its own
 * free lists turns them off there, so a use after free is still caught. */
#ifndef BASE_ASAN_H
#define BASE_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define BASE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BASE_ASAN 1
#endif
#endif

#endif
