/* trace_internal.h: what the reader, writer and checker share privately. The id-state bitmap
 * helpers live in hr_trace_fast.h, which the replay engine inlines too. */
#ifndef HR_TRACE_INTERNAL_H
#define HR_TRACE_INTERNAL_H

#include "hr_trace_fast.h"

#endif
