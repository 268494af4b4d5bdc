/* Licensed under the Apache License, Version 2.0.
 *
 * The fixed RA pair of the fuzz targets and of fuzz/mkseeds.c.  A TEST key:
 * published on purpose, it protects nothing.  It is fixed (not made at
 * start-up) so that the committed seed corpus, encrypted to this
 * certificate, stays decryptable by every build of fuzz_pkimessage.
 */
#ifndef SCEP_FUZZ_RA_H
#define SCEP_FUZZ_RA_H

static const char scep_fuzz_ra_cert_pem[] =
"-----BEGIN CERTIFICATE-----\n"
"MIIDRTCCAi2gAwIBAgICEJIwDQYJKoZIhvcNAQELBQAwMjEwMC4GA1UEAwwnbW9k\n"
"X3NjZXAgZnV6eiBSQSAodGVzdCBrZXksIG5vdCBzZWNyZXQpMCAXDTI2MTEyNjA4\n"
"MDMzOFoYDzIxMjYxMTAyMDgwMzM4WjAyMTAwLgYDVQQDDCdtb2Rfc2NlcCBmdXp6\n"
"IFJBICh0ZXN0IGtleSwgbm90IHNlY3JldCkwggEiMA0GCSqGSIb3DQEBAQUAA4IB\n"
"DwAwggEKAoIBAQCkhR7MZA2Jf8RGVMWwUdSOsc/xV4I02fmRwoZM4zK+mwhXG8NA\n"
"8Gq4cZQzIhh0lnt0plB8EAeuQleYrpSDuHMOOR1wbbHBrvuFEbf/q9nXyNPvW6ea\n"
"BhIOyGsfsHTjtijrXW2/4N009MrYJqRB9vrJQleYhIF/McZlTtD/HvI2SYKfrgMf\n"
"V8Ofccd2cMcoTNnDkK0qFFmaygIzMguS2/lRVycl623xFq8qlcFs7hyxWYrT6BTM\n"
"PrvL6KQ3PE0HhL/fTGHdsfBZk4XGnlC5Gl2sBU2HTBGy0JDCTM0+CtP+3t7GlVVI\n"
"GxzKeTOJA96v2920qy57hyxoWjxZu85FdpGxAgMBAAGjYzBhMB0GA1UdDgQWBBQC\n"
"CCp0jSJ8JFopO3uh091bEa5tjzAfBgNVHSMEGDAWgBQCCCp0jSJ8JFopO3uh091b\n"
"Ea5tjzAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIFoDANBgkqhkiG9w0B\n"
"AQsFAAOCAQEAmkxbb48/YN2WWahP6HdnGgB1t2Lis0leb9ar6hp1tcuNjDrO6KFo\n"
"MNb4EiJd1UbxKvjvBmvJfyGMrqBfaji8PVUFfEYdbXoiEQ65Bu9S2kY6N+8FJbXV\n"
"66Ma3M1aD83IY6KOugvbKck/OEP1qn4JC7ikzAWWF76pk+GJXcWtCMGenC2d5Nke\n"
"WsabsYcQzSNGLqWfLAUTkeP2vOJKakrvpux/csRZGjmQQ+KqlYZmdKjoG1a2jYNr\n"
"XolBEMsxmm3xc4S/sGKx6OFmYYxHbzSMxptmqgfecccpWlLAAO0uVyyyxf9q3FOC\n"
"NVjEM6Z6e0calRKIHSrpQ34Au1U25mhdJQ==\n"
"-----END CERTIFICATE-----\n"
;

static const char scep_fuzz_ra_key_pem[] =
"-----BEGIN PRIVATE KEY-----\n"
"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCkhR7MZA2Jf8RG\n"
"VMWwUdSOsc/xV4I02fmRwoZM4zK+mwhXG8NA8Gq4cZQzIhh0lnt0plB8EAeuQleY\n"
"rpSDuHMOOR1wbbHBrvuFEbf/q9nXyNPvW6eaBhIOyGsfsHTjtijrXW2/4N009MrY\n"
"JqRB9vrJQleYhIF/McZlTtD/HvI2SYKfrgMfV8Ofccd2cMcoTNnDkK0qFFmaygIz\n"
"MguS2/lRVycl623xFq8qlcFs7hyxWYrT6BTMPrvL6KQ3PE0HhL/fTGHdsfBZk4XG\n"
"nlC5Gl2sBU2HTBGy0JDCTM0+CtP+3t7GlVVIGxzKeTOJA96v2920qy57hyxoWjxZ\n"
"u85FdpGxAgMBAAECggEAB58TGizYY7JDiW6L6esgiau7ElcXdRNT+GimiBFOXH4a\n"
"GM70cKGyj/DTCLtfnqcJ+RFrURP9BxmTrUMJJkD5M4N51ad/QJW2mSeE+pcfdFud\n"
"Vc1NKll1pLGsJL+r6pCZvK2LVAQ6uyVL8E959IRYgdJM9IfO5/GKW08XZ3orhlA2\n"
"XSTGi27YOG6y7hL8/VY3YjFC++7M949/j3qTzIxytgZAZTbqnKybem4uEUKMXOcW\n"
"hZWQ8+EtCh8bBWaATBQvpogks9UNZAflBOjxW75np71XPyAblEcM0YY4PGAEnEKf\n"
"ewDdMbjSPpRRlynoEg/5LzQexNVjWrPtEHTjMSkkQQKBgQDirtP1A28xNHZVbSrA\n"
"Ko2x/pjEVhnfKI8LhV4UBDDjUbNMh6aFOWoJ11B9iiGRaR1VgxaTJaCqqGIAKakW\n"
"UshweNHJQoZ85fK8jfJgrNv9ikeIYNlZZp9J69XoZTbftWx/+jU7Fpu9bsl1Uk+e\n"
"8aXKlY8pFmrOGs2Gyuvh+866FQKBgQC5zCkBnKJyGXM8V7MMsplRjvLAQMVy06qt\n"
"6VjrJsNu1WXtNsfKZXFFR6m8AccCuki8grqxwsUdVx5SuXZmuGesmW0rU9q8jSdG\n"
"SV7YYUJ5P1alZ++f+wWsplBLgBmweA6ON/DIA8tDwFGgPSeqU/ZkI7ixVJIQuDFT\n"
"CcHJX+NsLQKBgQCLXTjq1eWytrJZ6vfxlTfwSrrZWqYlUOZBCwm//KOh3kUBtBRo\n"
"q9fJnRrbU+U3ZQyn2iQy61tQEJ3Pw8008EhS/bTcq43LlAQccJinXx8RTcaUzhZS\n"
"pIkiBWBJtJB8ESpXtBit70RovogVHTneWmq3liOh+ypG9KuPR4qmMQ3z0QKBgDLC\n"
"vX1MPvFvVJVq3GcesFag+F9gEtHBVIM5Gmr8Zy5zrOo3KjR4rI6h+pR749Qx8sdV\n"
"7A2+yb2vXIB7XQbJYMG+FR5eRYd4BP/l8byqLdAUZua/067glPdLZOqLr/kPg+KF\n"
"FAqBRtpWw7ZEnv6g+9L2E3KXSWS5/ffS1Zff07FtAoGAIjBb9kGeFKG6aTLK816l\n"
"HlrPb+5ds77ltvOB+M3z71SynYjzI1cXFzbOWzzAtvjT3tho1TRguGrsveDOe1vs\n"
"vQHtgxRLENFQZ10Tixoo3KCSTM/WvJCcu5w0hzy6kvomtajWyqpOU9sobxGn9drR\n"
"OQY6rn0wmneQ4/AuuLCclRE=\n"
"-----END PRIVATE KEY-----\n"
;

#endif /* SCEP_FUZZ_RA_H */
