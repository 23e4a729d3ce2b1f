/*
 * frontend: a live [frontend] section (see frontend.h).
 */
#include "frontend.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "plane.h"
#include "tls.h"

void
frontend_ref(struct frontend *fe)
{
    PLANE_ADD(fe->refs, 1);
}

void
frontend_unref(struct frontend *fe)
{
    /* Workers drop references of their connections without the lock. */
    unsigned was = __atomic_fetch_sub(&fe->refs, 1, __ATOMIC_ACQ_REL);

    assert(was > 0);
    if (was > 1)
        return;
    backend_unref(fe->backend);
    tls_ctx_free(fe->tls);
    free(fe->listeners);
    free(fe);
}

struct frontend *
frontend_create(const struct config_frontend *cf, struct backend *be,
                unsigned nloops, char *err, size_t errlen)
{
    struct frontend *fe = calloc(1, sizeof(*fe));

    if (fe == NULL)
        goto oom;
    fe->listeners = calloc(cf->nlisten * nloops + 1, sizeof(*fe->listeners));
    if (fe->listeners == NULL)
        goto oom;
    if (cf->tls_cert != NULL) {
        char terr[384];
        fe->tls = tls_ctx_create(cf->tls_cert, cf->tls_key, terr, sizeof(terr));
        if (fe->tls == NULL) {
            snprintf(err, errlen, "frontend %s: %s", cf->name, terr);
            goto err;
        }
    }
    snprintf(fe->name, sizeof(fe->name), "%s", cf->name);
    fe->cfg = *cf;
    /* The config is freed on reload while connections may still use this
     * frontend: keep nothing that points into it. */
    fe->cfg.listen = NULL;
    fe->cfg.tls_cert = fe->cfg.tls_key = NULL;
    fe->refs = 1;
    fe->backend = be;
    backend_ref(be);
    return fe;
oom:
    snprintf(err, errlen, "out of memory");
err:
    if (fe != NULL)
        free(fe->listeners);
    free(fe);
    return NULL;
}
