/* A small C shim over wcslib for torchfits: parse a header (wcspih or wcsbth), choose an
 * alternate, fix it as astropy does (wcsfixi, translating no units, no naxis: cylfix off), set
 * it up; transform pixel <-> world; copy; free. The Rust side sees an opaque handle and plain
 * arrays only. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include <wcs.h>
#include <wcsfix.h>
#include <wcshdr.h>
#include <wcserr.h>
#include <prj.h>
#include <cel.h>
#include <lin.h>
#include <wcsunits.h>

/* Doubles in the parameter block of tfw_celestial_params. */
#define TFW_NPARAMS 50

struct tfw_wcs {
  struct wcsprm wcs;
};

/* wcslib's messages are kept off (wcserr_enable(0), once per process, before the first parse):
 * wcslib 7.12 leaks the message it makes for an invalid unit inside wcsset and unitfix. The
 * switch is a global that wcslib reads on every call, so it is written once, under pthread_once,
 * never while another thread may be parsing. The message is made here instead, from the status,
 * and for a unit error from our own check of each celestial axis's CUNIT. */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;
static int quiet_calls = 0;

static void quiet_wcslib(void) {
  wcserr_enable(0);
  quiet_calls++;
}

/* How many times wcslib's messages were switched off: 1 after the first parse, ever after. */
int tfw_wcserr_enable_calls(void) {
  pthread_once(&quiet_once, quiet_wcslib);
  return quiet_calls;
}

static void put_err(char *err, int errlen, const char *what, int status, const struct wcsprm *wcs) {
  int i, ustat;
  double scale, offset, power;
  if (!err || errlen <= 0) return;
  if (wcs && wcs->cunit) {
    for (i = 0; i < wcs->naxis; i++) {
      if (strncmp(wcs->ctype[i], "RA--", 4) && strncmp(wcs->ctype[i], "DEC-", 4) && strncmp(wcs->ctype[i] + 1, "LON", 3) &&
          strncmp(wcs->ctype[i] + 1, "LAT", 3) && strncmp(wcs->ctype[i] + 2, "LN", 2) && strncmp(wcs->ctype[i] + 2, "LT", 2))
        continue;
      if (!wcs->cunit[i][0]) continue;
      ustat = wcsunits(wcs->cunit[i], "deg", &scale, &offset, &power);
      if (ustat) {
        snprintf(err, (size_t)errlen, "%s (status %d): in CUNIT%d, '%s' is not an angle (%s)", what, status, i + 1,
                 wcs->cunit[i], ustat < 13 ? wcsunits_errmsg[ustat] : "invalid units");
        return;
      }
    }
  }
  if (status > 0 && status < 14) {
    snprintf(err, (size_t)errlen, "%s (status %d): %s", what, status, wcs_errmsg[status]);
  } else {
    snprintf(err, (size_t)errlen, "%s (status %d)", what, status);
  }
}

/* Parses `nkeyrec` 80-character cards of `header` (not NUL-terminated inside; the caller passes
 * a NUL-terminated copy), picks alternate `alt` (' ' or 'A'..'Z'), fixes and sets it. `table`:
 * use wcsbth (binary-table image arrays and pixel lists) instead of wcspih. Returns NULL on
 * error with a message in `err`. A header with no WCS keywords at all gives wcslib's default (a
 * 2-axis linear identity), as astropy does, with *nowcs set. `drop_pv`: forget the PVi_m. */
struct tfw_wcs *tfw_parse(char *header, int nkeyrec, char alt, int table, int drop_pv, int *nowcs, char *err,
                          int errlen) {
  int nreject = 0, nwcs = 0, status, alts[27], i;
  struct wcsprm *all = NULL;
  struct tfw_wcs *out;
  int stat[NWCSFIX];
  struct wcserr info[NWCSFIX];
  *nowcs = 0;
  pthread_once(&quiet_once, quiet_wcslib);
  if (table) {
    status = wcsbth(header, nkeyrec, WCSHDR_all, 0, 0, NULL, &nreject, &nwcs, &all);
  } else {
    status = wcspih(header, nkeyrec, WCSHDR_all, 0, &nreject, &nwcs, &all);
  }
  if (status) {
    put_err(err, errlen, "wcslib cannot parse the header", status, NULL);
    if (all) wcsvfree(&nwcs, &all);
    return NULL;
  }
  if (nwcs == 0) {
    /* as astropy: no WCS keywords gives wcslib's default, a 2-axis linear identity */
    *nowcs = 1;
    if (all) wcsvfree(&nwcs, &all);
    out = calloc(1, sizeof(struct tfw_wcs));
    if (!out) return NULL;
    out->wcs.flag = -1;
    if (wcsini(1, 2, &out->wcs) || wcsset(&out->wcs)) {
      put_err(err, errlen, "wcslib cannot make a default WCS", 0, &out->wcs);
      wcsfree(&out->wcs);
      free(out);
      return NULL;
    }
    return out;
  }
  wcsidx(nwcs, &all, alts);
  i = (alt == ' ' || alt == 0) ? 0 : (alt >= 'A' && alt <= 'Z') ? alt - 'A' + 1 : -1;
  if (i < 0 || alts[i] < 0) {
    snprintf(err, (size_t)errlen, "the header has no WCS with key '%c'", alt ? alt : ' ');
    wcsvfree(&nwcs, &all);
    return NULL;
  }
  out = calloc(1, sizeof(struct tfw_wcs));
  if (!out) {
    wcsvfree(&nwcs, &all);
    put_err(err, errlen, "out of memory", 0, NULL);
    return NULL;
  }
  out->wcs.flag = -1;
  status = wcssub(1, all + alts[i], NULL, NULL, &out->wcs);
  wcsvfree(&nwcs, &all);
  if (status) {
    put_err(err, errlen, "wcslib cannot copy the WCS", status, &out->wcs);
    wcsfree(&out->wcs);
    free(out);
    return NULL;
  }
  /* astropy drops SCAMP's PVi_m when SIP is present too (decided by the caller) */
  if (drop_pv) out->wcs.npv = 0;
  /* as astropy's WCS(header): every fix, no unsafe unit translation, no cylfix (naxis unknown) */
  memset(info, 0, sizeof(info));
  wcsfixi(0, NULL, &out->wcs, stat, info);
  for (i = 0; i < NWCSFIX; i++) free(info[i].msg);
  status = wcsset(&out->wcs);
  if (status) {
    put_err(err, errlen, "wcslib cannot set up the WCS", status, &out->wcs);
    wcsfree(&out->wcs);
    free(out);
    return NULL;
  }
  return out;
}

/* A deep copy (for another thread). */
struct tfw_wcs *tfw_copy(const struct tfw_wcs *src) {
  struct tfw_wcs *out = calloc(1, sizeof(struct tfw_wcs));
  if (!out) return NULL;
  out->wcs.flag = -1;
  if (wcssub(1, &src->wcs, NULL, NULL, &out->wcs) || wcsset(&out->wcs)) {
    wcsfree(&out->wcs);
    free(out);
    return NULL;
  }
  return out;
}

void tfw_free(struct tfw_wcs *w) {
  if (!w) return;
  wcsfree(&w->wcs);
  free(w);
}

int tfw_naxis(const struct tfw_wcs *w) { return w->wcs.naxis; }
int tfw_lng(const struct tfw_wcs *w) { return w->wcs.lng; }
int tfw_lat(const struct tfw_wcs *w) { return w->wcs.lat; }

/* pixel -> world for `ncoord` points of `naxis` values (1-based pixels). `scratch` holds
 * 2*ncoord*naxis + 2*ncoord doubles. stat[k] != 0 marks an invalid point. Returns wcslib's
 * status (8: some points invalid, which is not an error). */
int tfw_p2s(struct tfw_wcs *w, int ncoord, const double *pix, double *world, int *stat, double *scratch) {
  int n = w->wcs.naxis;
  double *imgcrd = scratch, *phi = scratch + (size_t)ncoord * n, *theta = phi + ncoord;
  return wcsp2s(&w->wcs, ncoord, n, pix, imgcrd, phi, theta, world, stat);
}

/* world -> pixel (1-based), as tfw_p2s. */
int tfw_s2p(struct tfw_wcs *w, int ncoord, const double *world, double *pix, int *stat, double *scratch) {
  int n = w->wcs.naxis;
  double *imgcrd = scratch, *phi = scratch + (size_t)ncoord * n, *theta = phi + ncoord;
  return wcss2p(&w->wcs, ncoord, n, world, phi, theta, imgcrd, pix, stat);
}

/* The last error message of the handle (empty when none). */
const char *tfw_errmsg(const struct tfw_wcs *w) {
  return (w->wcs.err && w->wcs.err->msg) ? w->wcs.err->msg : "";
}

/* The projection code ("TAN", ...; empty when not celestial). */
void tfw_projection(const struct tfw_wcs *w, char code[4]) {
  if (w->wcs.lng < 0) { code[0] = 0; return; }
  memcpy(code, w->wcs.cel.prj.code, 3);
  code[3] = 0;
}

/* The resolved parameters of a plain celestial WCS (2 axes, no wcslib distortions, any
 * projection) for a transform outside wcslib: out[0..2] lng/lat axis indices, [2..4] CRPIX,
 * [4..8] the matrix CDELT*PC (row-major), [8] r0, [9..11] x0/y0, [11..16] the Euler angles of
 * cel, [16..46] the projection parameters pv[0..29] as prjset resolved them, [46] prj->n (ZPN's
 * degree), [47..49] prj->w[0..1] (ZPN's point of inflection), [49] prj->bounds; `code` gets the
 * projection. Returns 1 when the WCS is such, 0 otherwise. */
int tfw_celestial_params(const struct tfw_wcs *w, double out[TFW_NPARAMS], char code[4]) {
  const struct wcsprm *wcs = &w->wcs;
  const struct prjprm *prj = &wcs->cel.prj;
  int i, j;
  if (wcs->naxis != 2 || wcs->lng < 0 || wcs->lat < 0) return 0;
  if (wcs->lin.dispre || wcs->lin.disseq) return 0;
  if (wcs->cel.flag == 0 || prj->code[0] == 0) return 0;
  memcpy(code, prj->code, 3);
  code[3] = 0;
  out[0] = wcs->lng;
  out[1] = wcs->lat;
  out[2] = wcs->lin.crpix[0];
  out[3] = wcs->lin.crpix[1];
  for (i = 0; i < 2; i++) {
    for (j = 0; j < 2; j++) out[4 + 2 * i + j] = wcs->lin.cdelt[i] * wcs->lin.pc[2 * i + j];
  }
  out[8] = prj->r0;
  out[9] = prj->x0;
  out[10] = prj->y0;
  for (i = 0; i < 5; i++) out[11 + i] = wcs->cel.euler[i];
  for (i = 0; i < PVN; i++) out[16 + i] = prj->pv[i];
  out[46] = prj->n;
  out[47] = prj->w[0];
  out[48] = prj->w[1];
  out[49] = prj->bounds;
  return 1;
}
